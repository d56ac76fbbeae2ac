//! `GET /runs/{id}/outputs` and `GET /runs/{id}/outputs/{name}`.

use reqwest::StatusCode;

use crate::support::{TestServer, header, id_of, problem};

#[tokio::test]
async fn outputs_are_listed_and_downloaded_with_their_content_type() {
    let server = TestServer::start().await;
    let client = server.client();
    let document = client.upload("default", "members.csv", include_bytes!("../../../examples/data/members.csv")).await;
    let document_id = document["id"].as_str().expect("id").to_owned();
    let run = client.create_run("default", "members", &[&document_id]).await;
    let id = id_of(&run);
    client.follow(&id).await;
    let list = client.get_json(&format!("/runs/{id}/outputs")).await;
    let outputs = list["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 1, "{list}");
    assert_eq!(outputs[0]["name"], "normalized.xlsx");
    let xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    assert_eq!(outputs[0]["content_type"], xlsx);
    let response = client.get(outputs[0]["href"].as_str().expect("href")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), xlsx);
    assert!(header(&response, "content-disposition").contains("normalized.xlsx"));
    let bytes = response.bytes().await.expect("body");
    assert_eq!(Some(bytes.len() as u64), outputs[0]["byte_size"].as_u64());
    assert!(bytes.starts_with(b"PK"), "an xlsx is a zip");

    let quick = client.create_run("default", "quick", &[]).await;
    client.follow(&id_of(&quick)).await;
    let response = client.get(&format!("/runs/{}/outputs/result.txt", id_of(&quick))).await;
    assert_eq!(header(&response, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(response.text().await.expect("body"), "done\n");
    server.stop().await;
}

#[tokio::test]
async fn output_names_cannot_leave_the_outputs_directory() {
    let server = TestServer::start().await;
    let client = server.client();
    let run = client.create_run("default", "quick", &[]).await;
    let id = id_of(&run);
    client.follow(&id).await;
    // A link planted in the outputs directory is not served.
    let outputs = server.dir.path().join(format!("workspaces/default/runs/{id}/outputs"));
    std::os::unix::fs::symlink(server.dir.path().join("ade.sqlite"), outputs.join("link.sqlite")).expect("symlink");
    // Nor is a file the blob store is still writing.
    std::fs::write(outputs.join(".ade-01.partial"), b"half").expect("partial");
    for name in [
        "..%2F..%2F..%2F..%2Fade.sqlite",
        "..",
        "%2E%2E",
        "..%5Cade.sqlite",
        "link.sqlite",
        "missing.txt",
        "%00",
        ".ade-01.partial",
    ] {
        problem(client.get(&format!("/runs/{id}/outputs/{name}")).await, StatusCode::NOT_FOUND).await;
    }
    let list = client.get_json(&format!("/runs/{id}/outputs")).await;
    let names: Vec<_> = list["outputs"].as_array().expect("outputs").iter().map(|o| o["name"].clone()).collect();
    assert_eq!(names, vec![serde_json::json!("result.txt")], "links and partial files are not listed");
    problem(client.get("/runs/run_01M8C4DS2PH0887ZPTJ9T85312/outputs").await, StatusCode::NOT_FOUND).await;
    // A run with no outputs yet lists none.
    let waiting = client.create_run("default", "gated", &[]).await;
    assert_eq!(client.get_json(&format!("/runs/{}/outputs", id_of(&waiting))).await["outputs"], serde_json::json!([]));
    server.stop().await;
}
