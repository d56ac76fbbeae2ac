// The ade run viewer: plain JavaScript, no framework, no build step.
//
// Everything shown comes from the API (SPEC §4). A run's view is a fold over its event log:
// on opening a run (or reloading the page) the log is replayed from sequence 0 through JSON
// pages, then followed live over EventSource from the last sequence seen. Every event is applied
// at most once (by sequence), so a reload or a dropped connection neither repeats nor loses
// anything: the log, not the page, is the source of truth.
(function () {
  'use strict';

  // Console lines kept in the DOM: more would make a long run's tab slow for nothing (the full
  // log is one click away as NDJSON).
  const CONSOLE_CAP = 2000;
  // In a flood of lines the console is redrawn at most every CONSOLE_FLOOD_MS: fewer, larger
  // updates, most of whose lines the cap drops before they ever reach the DOM. A trickle (at most
  // CONSOLE_TRICKLE new lines), and the end of the run, are drawn at once.
  const CONSOLE_FLOOD_MS = 250;
  const CONSOLE_TRICKLE = 100;
  // Events per JSON page while replaying a log.
  const PAGE_LIMIT = 5000;
  // How often the runs list is refreshed; the refresh doubles as the "is the server there" check.
  const REFRESH_MS = 3000;
  // Wait before resuming a stream the browser gave up on.
  const RESUME_MS = 2000;
  // Issues listed under the validation summary (the counts cover them all).
  const ISSUE_SAMPLE = 50;

  const CONSOLE_LEVELS = ['debug', 'info', 'warn', 'error'];
  const SEVERITIES = ['error', 'warning', 'info'];

  const $ = (id) => document.getElementById(id);

  // Where the API's paths start: empty at the server's root, `/ade` when the server is mounted
  // under /ade (the server fills the `ade-base` meta element of the page it serves). Links the
  // API returns (outputs' `href`) already carry it.
  const BASE = (document.querySelector('meta[name="ade-base"]') || { content: '' }).content.replace(/\/+$/, '');

  // ---------------------------------------------------------------- small DOM helpers

  // el('div', {class: 'x', 'data-n': 3}, child, 'text', ...): text is always set as text, never
  // parsed as HTML, so nothing from an event can inject markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'onclick') node.addEventListener('click', value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function statusBadge(status) {
    const safe = /^[a-z_]+$/.test(status || '') ? status : 'unknown';
    return el('span', { class: 'status status-' + safe, 'data-status': safe }, status || '?');
  }

  function formatDuration(ms) {
    if (typeof ms !== 'number' || !isFinite(ms)) return '';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
    const minutes = Math.floor(ms / 60000);
    return minutes + ' min ' + Math.round((ms % 60000) / 1000) + ' s';
  }

  function formatAge(iso) {
    const then = Date.parse(iso);
    if (!isFinite(then)) return '';
    const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
    if (seconds < 60) return seconds + ' s ago';
    if (seconds < 3600) return Math.floor(seconds / 60) + ' min ago';
    if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ago';
    return Math.floor(seconds / 86400) + ' d ago';
  }

  function formatScore(score) {
    return typeof score === 'number' ? Math.round(score * 100) + '%' : '';
  }

  // ---------------------------------------------------------------- settings

  // localStorage may be unavailable (privacy modes): the page still works, it just forgets.
  const storage = {
    get(key) {
      try { return localStorage.getItem(key) || ''; } catch (e) { return ''; }
    },
    set(key, value) {
      try {
        if (value) localStorage.setItem(key, value); else localStorage.removeItem(key);
      } catch (e) { /* not kept */ }
    },
  };
  let token = storage.get('ade.viewer.token');
  let workspace = storage.get('ade.viewer.workspace');

  // ---------------------------------------------------------------- the banner

  // One banner, several possible problems; the most important one is shown.
  const problems = new Map();
  const PROBLEM_ORDER = ['offline', 'auth', 'error'];

  function setProblem(kind, text) {
    problems.set(kind, text);
    renderBanner();
  }

  function clearProblem(kind) {
    if (problems.delete(kind)) renderBanner();
  }

  function renderBanner() {
    const banner = $('banner');
    const kind = PROBLEM_ORDER.find((k) => problems.has(k));
    if (!kind) {
      banner.hidden = true;
      banner.textContent = '';
      banner.removeAttribute('data-kind');
      return;
    }
    banner.dataset.kind = kind;
    banner.textContent = problems.get(kind);
    banner.hidden = false;
  }

  // ---------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  // The API path `path` (`/runs`), under the mount point.
  function apiUrl(path) {
    return BASE + path;
  }

  // fetch of an API path, with the token in a header (never in the URL), and the banner kept up
  // to date: a network failure means the server is unreachable, a 401 that a token is needed.
  function api(path, options) {
    return request(apiUrl(path), options);
  }

  // The same for a URL as the API gave it (a link).
  async function request(url, options) {
    const init = Object.assign({ cache: 'no-store' }, options || {});
    const headers = new Headers(init.headers || {});
    if (token) headers.set('Authorization', 'Bearer ' + token);
    if (!headers.has('Accept')) headers.set('Accept', 'application/json');
    init.headers = headers;
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      setProblem('offline', 'The server at ' + location.origin + BASE + ' is unreachable; retrying…');
      throw new ApiError(0, 'the server is unreachable');
    }
    clearProblem('offline');
    if (response.ok) {
      clearProblem('auth');
      return response;
    }
    let detail = response.status + ' ' + response.statusText;
    try {
      const problem = await response.json();
      if (problem && problem.detail) detail = problem.detail;
    } catch (e) { /* not problem+json */ }
    if (response.status === 401) {
      setProblem('auth', token
        ? 'The token was refused (' + detail + '). Enter a valid token above.'
        : 'This server needs a token: enter it above (' + detail + ').');
    }
    throw new ApiError(response.status, detail);
  }

  async function apiJson(path, options) {
    const response = await api(path, options);
    return response.status === 204 ? null : response.json();
  }

  // Downloads through fetch, so that the token goes in a header (a plain link cannot send it).
  async function download(url, accept, filename) {
    try {
      const response = await request(url, { headers: { Accept: accept } });
      const url = URL.createObjectURL(await response.blob());
      const link = el('a', { href: url, download: filename });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (error) {
      setProblem('error', 'Download of ' + filename + ' failed: ' + error.message);
    }
  }

  // ---------------------------------------------------------------- home: configurations, runs

  async function loadConfigurations() {
    const select = $('configuration');
    try {
      const body = await apiJson('/configurations');
      const previous = select.value;
      select.replaceChildren(...body.configurations.map((c) =>
        el('option', { value: c.id, title: c.description || '' }, c.id + (c.description ? ' — ' + c.description : ''))));
      if (previous) select.value = previous;
    } catch (error) { /* the banner says why; the next refresh retries */ }
  }

  // Answers may come back out of order (a refresh, then a filter change): only the latest
  // request's answer is shown.
  let runsRequest = 0;

  async function loadRuns() {
    const mine = ++runsRequest;
    const params = new URLSearchParams({ limit: '50' });
    const status = $('status-filter').value;
    if (status) params.set('status', status);
    if (workspace) params.set('workspace_id', workspace);
    try {
      const page = await apiJson('/runs?' + params);
      if (mine !== runsRequest) return;
      renderRuns(page.runs || []);
    } catch (error) {
      if (error.status && error.status !== 401) setProblem('error', 'Runs: ' + error.message);
      return;
    }
    clearProblem('error');
    // Configurations failed earlier (server down, missing token)? Now is the time to retry.
    if ($('configuration').options.length === 0) loadConfigurations();
  }

  function renderRuns(runs) {
    const rows = runs.map((run) => el('tr', {
      class: 'run-row', 'data-run-id': run.id, 'data-status': run.status,
      onclick: () => { location.hash = '#/runs/' + run.id; },
    },
    el('td', { class: 'run-id' }, el('a', { href: '#/runs/' + run.id }, run.id)),
    el('td', {}, run.configuration_id),
    el('td', {}, run.mode),
    el('td', {}, statusBadge(run.status)),
    el('td', { title: run.created_at }, formatAge(run.created_at))));
    $('runs-body').replaceChildren(...rows);
    $('runs-empty').hidden = runs.length > 0;
  }

  async function startRun(event) {
    event.preventDefault();
    const message = $('start-message');
    const button = $('start');
    const files = Array.from($('files').files || []);
    const configuration = $('configuration').value;
    if (!configuration) {
      message.className = 'message error';
      message.textContent = 'Pick a configuration.';
      return;
    }
    button.disabled = true;
    message.className = 'message';
    try {
      const query = workspace ? '?workspace_id=' + encodeURIComponent(workspace) : '';
      const documentIds = [];
      for (const [index, file] of files.entries()) {
        message.textContent = 'Uploading ' + file.name + ' (' + (index + 1) + ' of ' + files.length + ')…';
        const form = new FormData();
        form.append('file', file, file.name);
        const uploaded = await apiJson('/documents' + query, { method: 'POST', body: form });
        documentIds.push(uploaded.id);
      }
      message.textContent = 'Starting the run…';
      const request = { configuration_id: configuration, document_ids: documentIds, mode: $('mode').value };
      if (workspace) request.workspace_id = workspace;
      const run = await apiJson('/runs', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(request),
      });
      message.textContent = 'Started ' + run.id + '.';
      $('files').value = '';
      location.hash = '#/runs/' + run.id;
      loadRuns();
    } catch (error) {
      message.className = 'message error';
      message.textContent = 'Could not start the run: ' + error.message;
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- one run: the model

  let view = null; // the open run, or null on the home page

  function newView(runId) {
    return {
      runId,
      lastSeq: 0, // the last sequence applied: every event is applied once, in order
      status: null,
      mode: null,
      configurationId: null,
      tracks: { build: [], run: [] }, // phases, in order: {phase, status, durationMs, message}
      build: null, // build.created / build.completed, merged
      runStarted: null,
      tables: new Map(), // table_id -> run.table.summary payload
      issues: [], // the first ISSUE_SAMPLE run.validation.issue payloads
      issueCount: 0,
      validation: null,
      errors: [],
      completed: null, // the run.completed payload
      consolePending: [], // console lines not yet in the DOM
      consoleTotal: 0, // every console line seen
      consoleRenderedAt: 0, // when the console was last drawn (performance.now())
      consoleTimer: null,
      dirty: new Set(),
      source: null, // the EventSource, while live
      streamed: 0, // events that came over EventSource (the rest came from JSON pages)
      resumeTimer: null,
      frame: null,
      outputs: null,
    };
  }

  // Applies one event to the view. Unknown types and fields are ignored (SPEC §1: a page must
  // accept them without failing).
  function accept(v, event) {
    if (!event || typeof event.sequence !== 'number' || event.sequence <= v.lastSeq) return;
    v.lastSeq = event.sequence;
    const p = event.payload || {};
    switch (event.type) {
      case 'run.queued':
        v.status = 'queued';
        v.mode = p.mode;
        v.configurationId = event.configuration_id;
        v.dirty.add('head');
        break;
      case 'build.created':
        v.build = Object.assign({}, v.build, { reason: p.reason, shouldBuild: p.should_build });
        v.dirty.add('timeline');
        break;
      case 'build.started':
        v.status = 'building';
        v.dirty.add('head');
        break;
      case 'build.phase.started':
      case 'run.phase.started':
        phaseStarted(v.tracks[event.type.startsWith('build') ? 'build' : 'run'], p);
        v.dirty.add('timeline');
        break;
      case 'build.phase.completed':
      case 'run.phase.completed':
        phaseCompleted(v.tracks[event.type.startsWith('build') ? 'build' : 'run'], p);
        v.dirty.add('timeline');
        break;
      case 'build.completed':
        v.build = Object.assign({}, v.build, { status: p.status, durationMs: p.duration_ms, error: p.error });
        v.dirty.add('timeline');
        break;
      case 'run.started':
        v.status = 'running';
        v.runStarted = { at: event.created_at, engineVersion: p.engine_version };
        v.dirty.add('head').add('timeline');
        break;
      case 'console.line':
        v.consoleTotal += 1;
        v.consolePending.push(p);
        // Only the last CONSOLE_CAP lines can be shown: drop the rest early (amortized) so that a
        // hidden tab, where frames do not run, does not pile up a million lines.
        if (v.consolePending.length >= 2 * CONSOLE_CAP) v.consolePending.splice(0, v.consolePending.length - CONSOLE_CAP);
        v.dirty.add('console');
        break;
      case 'run.table.summary':
        v.tables.set(p.table_id, p);
        v.dirty.add('tables');
        break;
      case 'run.validation.issue':
        v.issueCount += 1;
        if (v.issues.length < ISSUE_SAMPLE) v.issues.push(p);
        v.dirty.add('validation');
        break;
      case 'run.validation.summary':
        v.validation = p;
        v.dirty.add('validation');
        break;
      case 'run.error':
        v.errors.push(p);
        v.dirty.add('timeline');
        break;
      case 'run.completed':
        v.completed = p;
        v.status = p.status;
        v.dirty.add('head').add('timeline').add('tables').add('validation').add('final');
        stopStream(v);
        loadOutputs(v);
        break;
      default:
        break;
    }
    scheduleRender(v);
  }

  function phaseStarted(track, p) {
    track.push({ phase: p.phase, status: 'running', message: p.message });
  }

  function phaseCompleted(track, p) {
    // The latest still-running entry of that phase; an engine may also complete a phase it never
    // announced, which then gets an entry of its own.
    let entry = null;
    for (let i = track.length - 1; i >= 0; i--) {
      if (track[i].phase === p.phase && track[i].status === 'running') { entry = track[i]; break; }
    }
    if (!entry) {
      entry = { phase: p.phase };
      track.push(entry);
    }
    entry.status = p.status;
    entry.durationMs = p.duration_ms;
    if (p.message) entry.message = p.message;
  }

  // ---------------------------------------------------------------- one run: loading and streaming

  async function openRun(runId) {
    closeRun();
    const v = newView(runId);
    view = v;
    $('home').hidden = true;
    $('run').hidden = false;
    $('run-id').textContent = runId;
    $('run').dataset.runId = runId;
    $('run').dataset.lastSequence = '0';
    $('run').removeAttribute('data-complete');
    $('console-lines').replaceChildren();
    $('final').hidden = true;
    for (const part of ['head', 'timeline', 'tables', 'validation', 'console']) v.dirty.add(part);
    scheduleRender(v);
    resume(v);
  }

  function closeRun() {
    if (!view) return;
    stopStream(view);
    clearTimeout(view.resumeTimer);
    clearTimeout(view.consoleTimer);
    // A frame already scheduled for it finds `view` changed and does nothing.
    view = null;
  }

  // Catches up through JSON pages from the last sequence held, then goes live. Used on opening
  // a run and whenever a stream was lost for good; a failure tries again a little later.
  async function resume(v) {
    if (view !== v || v.completed) return;
    setLive(v, v.lastSeq === 0 ? 'loading…' : 'catching up…');
    try {
      for (;;) {
        const params = new URLSearchParams({ after_sequence: String(v.lastSeq), limit: String(PAGE_LIMIT) });
        const page = await apiJson('/runs/' + encodeURIComponent(v.runId) + '/events?' + params);
        if (view !== v) return;
        for (const event of page.events) accept(v, event);
        if (page.next_after_sequence === null || page.events.length === 0) break;
      }
    } catch (error) {
      if (view !== v) return;
      if (error.status === 404) {
        setLive(v, 'no such run (or not visible with this token)');
        return;
      }
      setLive(v, 'waiting for the server…');
      v.resumeTimer = setTimeout(() => resume(v), RESUME_MS);
      return;
    }
    if (!v.completed) connect(v);
  }

  function connect(v) {
    const params = new URLSearchParams({ after_sequence: String(v.lastSeq) });
    // EventSource cannot send headers: the token goes in the query, on this one URL only.
    if (token) params.set('access_token', token);
    const source = new EventSource(apiUrl('/runs/' + encodeURIComponent(v.runId) + '/events?' + params));
    v.source = source;
    source.addEventListener('open', () => {
      clearProblem('offline');
      setLive(v, 'live');
    });
    source.addEventListener('ade.event', (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      v.streamed += 1;
      accept(v, event);
    });
    source.addEventListener('error', () => {
      if (view !== v || v.source !== source || v.completed) return;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error, a refused token, …): catch up through the API,
        // which also says what is wrong in the banner, then reconnect from the last sequence.
        stopStream(v);
        setLive(v, 'reconnecting…');
        v.resumeTimer = setTimeout(() => resume(v), RESUME_MS);
      } else {
        // CONNECTING: the browser reconnects by itself and sends Last-Event-ID, which the server
        // combines with after_sequence. Ask the server directly to know whether it is there.
        setLive(v, 'reconnecting…');
        api('/healthz').catch(() => { /* the banner says it */ });
      }
    });
  }

  function stopStream(v) {
    if (v.source) {
      v.source.close();
      v.source = null;
    }
  }

  async function loadOutputs(v) {
    try {
      const body = await apiJson('/runs/' + encodeURIComponent(v.runId) + '/outputs');
      if (view !== v) return;
      v.outputs = body.outputs || [];
    } catch (error) {
      if (view !== v) return;
      v.outputs = [];
    }
    v.dirty.add('final');
    scheduleRender(v);
  }

  function setLive(v, text) {
    if (view === v) $('run-live').textContent = text;
  }

  // ---------------------------------------------------------------- one run: rendering

  // Events only mark what changed; the DOM is updated at most once per frame, whatever the rate.
  function scheduleRender(v) {
    if (v.frame !== null) return;
    const run = () => {
      v.frame = null;
      if (view === v) render(v);
    };
    // Frames do not run in a hidden tab: fall back to a timer there.
    v.frame = document.hidden ? setTimeout(run, 250) : requestAnimationFrame(run);
  }

  function render(v) {
    const dirty = v.dirty;
    v.dirty = new Set();
    if (dirty.has('head')) renderHead(v);
    if (dirty.has('timeline')) renderTimeline(v);
    if (dirty.has('tables')) renderTables(v);
    if (dirty.has('validation')) renderValidation(v);
    if (dirty.has('console')) {
      const wait = consoleWait(v);
      if (wait <= 0) {
        renderConsole(v);
      } else {
        v.dirty.add('console'); // still to draw, after the wait
        if (v.consoleTimer === null) {
          v.consoleTimer = setTimeout(() => {
            v.consoleTimer = null;
            scheduleRender(v);
          }, wait);
        }
      }
    }
    if (dirty.has('final')) renderFinal(v);
    $('run').dataset.lastSequence = String(v.lastSeq);
    $('run').dataset.streamed = String(v.streamed);
    if (v.completed) {
      $('run').dataset.complete = 'true';
      setLive(v, 'complete');
    }
  }

  function renderHead(v) {
    $('run-status').replaceChildren(statusBadge(v.status || 'loading'));
    const parts = [];
    if (v.configurationId) parts.push('configuration ' + v.configurationId);
    if (v.mode) parts.push('mode ' + v.mode);
    $('run-meta').textContent = parts.join(' · ');
  }

  function renderTimeline(v) {
    const tracks = [];
    const buildItems = v.tracks.build.map(phaseItem);
    if (v.build && v.build.status) {
      const text = v.build.status === 'reused' ? 'build reused (cached)' : 'build ' + v.build.status;
      buildItems.push(el('span', { class: 'phase status-' + v.build.status, 'data-scope': 'build', 'data-phase': '' },
        text, el('span', { class: 'phase-duration' }, formatDuration(v.build.durationMs))));
    } else if (v.build && v.build.reason) {
      buildItems.push(el('span', { class: 'phase' }, 'build ' + v.build.reason.replace(/_/g, ' ')));
    }
    if (buildItems.length) tracks.push(el('div', { class: 'track', 'data-track': 'build' }, el('span', { class: 'track-name' }, 'build'), ...buildItems));
    const runItems = v.tracks.run.map(phaseItem);
    if (v.completed) {
      const execution = v.completed.execution || {};
      runItems.push(el('span', { class: 'phase status-' + v.completed.status, 'data-scope': 'run', 'data-phase': '' },
        'run ' + v.completed.status, el('span', { class: 'phase-duration' }, formatDuration(execution.duration_ms))));
    } else if (v.runStarted) {
      runItems.push(el('span', { class: 'phase status-running' }, 'running…'));
    }
    if (runItems.length) tracks.push(el('div', { class: 'track', 'data-track': 'run' }, el('span', { class: 'track-name' }, 'run'), ...runItems));
    if (!tracks.length) tracks.push(el('p', { class: 'message' }, 'Waiting for the run to start…'));
    $('timeline').replaceChildren(...tracks);
    $('errors').replaceChildren(...v.errors.map((e) =>
      el('div', { class: 'error' }, (e.stage || '') + ' error ' + (e.code || '') + ': ' + (e.message || ''))));

    function phaseItem(entry) {
      return el('span', {
        class: 'phase status-' + (/^[a-z_]+$/.test(entry.status || '') ? entry.status : 'unknown'),
        'data-phase': entry.phase, 'data-status': entry.status, title: entry.message || '',
      }, entry.phase, el('span', { class: 'phase-duration' },
        entry.status === 'running' ? 'running…' : formatDuration(entry.durationMs)));
    }
  }

  function severityCounts(bySeverity) {
    const counts = bySeverity || {};
    return SEVERITIES.filter((s) => counts[s]).map((s) =>
      el('span', { class: 'sev sev-' + s, 'data-severity': s, 'data-count': counts[s] }, counts[s] + ' ' + s));
  }

  function renderTables(v) {
    if (v.tables.size === 0) {
      $('tables').replaceChildren(el('p', { class: 'message' }, v.completed ? 'No tables.' : 'No table yet.'));
      return;
    }
    const cards = [];
    for (const table of v.tables.values()) {
      const mapping = table.mapping || {};
      const mapped = mapping.mapped_columns || [];
      const unmapped = mapping.unmapped_columns || [];
      const validation = table.validation || {};
      const issues = validation.issues_total || 0;
      cards.push(el('article', {
        class: 'table-card', 'data-table-id': table.table_id, 'data-source-file': table.source_file,
        'data-rows': table.row_count, 'data-mapped': table.mapped_field_count,
        'data-unmapped': table.unmapped_column_count, 'data-issues': issues,
      },
      el('h4', {}, (table.source_file || '') + (table.source_sheet ? ' · ' + table.source_sheet : '')),
      el('div', { class: 'mono' }, table.table_id),
      el('div', { class: 'facts' },
        el('span', { class: 'fact' }, el('b', { class: 'rows' }, table.row_count), ' rows'),
        el('span', { class: 'fact' }, el('b', {}, table.column_count), ' columns'),
        el('span', { class: 'fact' }, el('b', { class: 'mapped-count' }, table.mapped_field_count), ' of ' + mapped.length + ' fields mapped'),
        el('span', { class: 'fact' }, el('b', { class: 'issues-total' }, issues), ' issues')),
      el('table', { class: 'fields' },
        el('thead', {}, el('tr', {}, el('th', {}, 'field'), el('th', {}, 'column'), el('th', {}, 'score'))),
        el('tbody', {}, ...mapped.map((m) => el('tr', {
          class: m.is_satisfied ? 'mapped-field' : 'mapped-field unsatisfied',
          'data-field': m.field, 'data-satisfied': m.is_satisfied ? 'true' : 'false',
        },
        el('td', {}, m.field, m.is_required ? el('span', { class: 'required', title: 'required' }, ' *') : null),
        el('td', {}, m.is_satisfied ? m.header || '(column ' + m.source_column_index + ')' : '—'),
        el('td', {}, m.is_satisfied ? formatScore(m.score) : ''))))),
      el('div', { class: 'unmapped' }, 'Unmapped columns: ',
        unmapped.length ? unmapped.map((u) => (u.header || '(blank)') + ' → ' + u.output_header).join(', ') : 'none'),
      el('div', { class: 'severities' }, 'Issues: ', ...(issues ? severityCounts(validation.issues_by_severity) : ['none']))));
    }
    $('tables').replaceChildren(...cards);
  }

  function renderValidation(v) {
    const parts = [];
    const summary = v.validation;
    if (summary) {
      parts.push(el('div', { class: 'facts', 'data-issues': summary.issues_total || 0 },
        el('span', { class: 'fact' }, el('b', {}, summary.issues_total || 0), ' issues'),
        el('span', { class: 'fact' }, 'max severity: ', summary.max_severity || 'none'),
        ...severityCounts(summary.issues_by_severity)));
      const codes = Object.entries(summary.issues_by_code || {});
      if (codes.length) {
        parts.push(el('table', { class: 'fields' },
          el('thead', {}, el('tr', {}, el('th', {}, 'code'), el('th', {}, 'count'))),
          el('tbody', {}, ...codes.map(([code, count]) => el('tr', {}, el('td', {}, code), el('td', {}, count))))));
      }
    } else if (v.issueCount === 0) {
      parts.push(el('p', { class: 'message' }, v.completed ? 'No validation summary.' : 'No validation summary yet.'));
    }
    if (v.issues.length) {
      const more = v.issueCount > v.issues.length ? ' (first ' + v.issues.length + ' of ' + v.issueCount + ')' : '';
      parts.push(el('details', {}, el('summary', {}, 'Issues' + more),
        el('table', { class: 'fields' },
          el('thead', {}, el('tr', {}, ...['severity', 'row', 'field', 'code', 'message'].map((h) => el('th', {}, h)))),
          el('tbody', {}, ...v.issues.map((i) => el('tr', {},
            el('td', { class: 'sev-' + i.severity }, i.severity), el('td', {}, i.row), el('td', {}, i.field),
            el('td', {}, i.code), el('td', {}, i.message)))))));
    }
    $('validation').replaceChildren(...parts);
  }

  // Milliseconds before the console may be redrawn; 0 or less: now.
  function consoleWait(v) {
    if (v.completed || v.consolePending.length <= CONSOLE_TRICKLE) return 0;
    return v.consoleRenderedAt + CONSOLE_FLOOD_MS - performance.now();
  }

  function renderConsole(v) {
    v.consoleRenderedAt = performance.now();
    const box = $('console-lines');
    // Keep following the end only if the reader was there: scrolling up to read stays put.
    const following = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    let lines = v.consolePending;
    v.consolePending = [];
    if (lines.length > CONSOLE_CAP) lines = lines.slice(lines.length - CONSOLE_CAP);
    const fragment = document.createDocumentFragment();
    for (const line of lines) fragment.append(consoleLine(line));
    if (lines.length === CONSOLE_CAP) {
      box.replaceChildren(fragment);
    } else {
      box.append(fragment);
      for (let excess = box.childElementCount - CONSOLE_CAP; excess > 0; excess--) box.firstElementChild.remove();
    }
    const hidden = v.consoleTotal - box.childElementCount;
    $('console-hidden').hidden = hidden <= 0;
    $('console-hidden').dataset.hidden = String(Math.max(0, hidden));
    $('console-hidden-text').textContent = hidden + ' earlier line' + (hidden === 1 ? '' : 's') + ' hidden';
    $('console-total').textContent = v.consoleTotal + (v.consoleTotal === 1 ? ' line' : ' lines');
    if (following) box.scrollTop = box.scrollHeight;
  }

  // One element and one text node per line (scope and level are drawn by CSS from data
  // attributes): thousands of lines cost as little DOM as they can.
  function consoleLine(line) {
    const level = CONSOLE_LEVELS.includes(line.level) ? line.level : 'info';
    const scope = line.scope === 'build' ? 'build' : 'run';
    return el('div', {
      class: 'line level-' + level + (line.stream === 'stderr' ? ' stderr' : ''),
      'data-scope': scope, 'data-level': level,
    }, line.message || '');
  }

  function renderFinal(v) {
    const done = v.completed;
    if (!done) {
      $('final').hidden = true;
      return;
    }
    const summary = done.summary || {};
    const core = summary.core || {};
    const execution = done.execution || {};
    const rows = [
      ['status', statusBadge(done.status)],
      done.failure ? ['failure', (done.failure.stage || '') + ' · ' + (done.failure.code || '') + ': ' + (done.failure.message || '')] : null,
      ['duration', formatDuration(execution.duration_ms)],
      ['exit code', execution.exit_code === null || execution.exit_code === undefined ? '—' : execution.exit_code],
      ['tables', el('span', { 'data-fact': 'table_count' }, core.table_count || 0)],
      ['rows', el('span', { 'data-fact': 'row_count' }, core.row_count || 0)],
      ['mapped fields', el('span', {}, el('span', { 'data-fact': 'mapped_field_count' }, core.mapped_field_count || 0),
        ' of ' + (core.canonical_field_count || 0))],
      ['unmapped columns', el('span', { 'data-fact': 'unmapped_column_count' }, core.unmapped_column_count || 0)],
      ['issues', el('span', {}, el('span', { 'data-fact': 'validation_issue_count_total' }, core.validation_issue_count_total || 0),
        ' ', ...severityCounts(core.issue_counts_by_severity))],
      ['events', el('span', { 'data-fact': 'event_count' }, done.event_count)],
    ].filter(Boolean);
    const outputs = v.outputs === null
      ? el('p', { class: 'message' }, 'Loading outputs…')
      : v.outputs.length === 0
        ? el('p', { class: 'message' }, 'No output files.')
        : el('ul', { class: 'outputs' }, ...v.outputs.map((o) => el('li', {},
          el('a', {
            class: 'output', href: o.href, download: o.name,
            onclick: (e) => {
              // With a token the browser cannot send it on a plain link: fetch, then save.
              if (!token) return;
              e.preventDefault();
              download(o.href, '*/*', o.name);
            },
          }, o.name), ' (' + o.byte_size + ' bytes)')));
    $('final-body').replaceChildren(
      el('dl', { 'data-status': done.status }, ...rows.flatMap(([name, value]) => [el('dt', {}, name), el('dd', {}, value)])),
      el('h4', {}, 'Outputs'), outputs);
    $('final').dataset.status = done.status;
    $('final').hidden = false;
  }

  function downloadEvents() {
    if (!view) return;
    download(apiUrl('/runs/' + encodeURIComponent(view.runId) + '/events'), 'application/x-ndjson', view.runId + '.ndjson');
  }

  // ---------------------------------------------------------------- routing and start-up

  // `#/runs/<id>` opens a run (so a reload or a shared link reopens it); anything else is home.
  function route() {
    const match = /^#\/runs\/([A-Za-z0-9_]+)$/.exec(location.hash);
    if (match) {
      if (!view || view.runId !== match[1]) openRun(match[1]);
      return;
    }
    closeRun();
    $('run').hidden = true;
    $('home').hidden = false;
    loadRuns();
  }

  function saveSettings(event) {
    event.preventDefault();
    token = $('token').value.trim();
    workspace = $('workspace').value.trim();
    storage.set('ade.viewer.token', token);
    storage.set('ade.viewer.workspace', workspace);
    reloadEverything();
  }

  function forgetToken() {
    token = '';
    $('token').value = '';
    storage.set('ade.viewer.token', '');
    reloadEverything();
  }

  function reloadEverything() {
    problems.clear();
    renderBanner();
    loadConfigurations();
    loadRuns();
    // A run that was open is reopened with the new credentials (from sequence 0: the view is
    // rebuilt, not patched).
    if (view) openRun(view.runId);
  }

  function start() {
    $('token').value = token;
    $('workspace').value = workspace;
    $('settings').addEventListener('submit', saveSettings);
    $('token-clear').addEventListener('click', forgetToken);
    $('start-form').addEventListener('submit', startRun);
    $('status-filter').addEventListener('change', loadRuns);
    $('runs-refresh').addEventListener('click', loadRuns);
    $('console-download').addEventListener('click', downloadEvents);
    $('events-download').addEventListener('click', downloadEvents);
    window.addEventListener('hashchange', route);
    loadConfigurations();
    route();
    // The list stays fresh, and a server that went away (or came back) shows in the banner.
    setInterval(() => {
      if (!document.hidden) loadRuns();
    }, REFRESH_MS);
    document.body.dataset.ready = 'true';
  }

  start();
}());
