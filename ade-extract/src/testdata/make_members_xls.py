"""Writes members.xls, the BIFF8 (Excel 97-2003) fixture of the extract engine's XLS test.

rust_xlsxwriter writes only XLSX, so this small file is committed; regenerate it with
`pip install xlwt==1.3.0 && python3 make_members_xls.py` (xlwt writes real BIFF8).
"""
import datetime

import xlwt

book = xlwt.Workbook()
sheet = book.add_sheet("Club")
date = xlwt.easyxf(num_format_str="yyyy-mm-dd")
sheet.write(0, 0, "Members (XLS)")
for column, title in enumerate(["Member #", "Full name", "E-mail", "Joined", "Notes"]):
    sheet.write(2, column, title)
rows = [
    (1, "Ada", "ada@example.org", datetime.date(2019, 3, 14), "first"),
    (None, "Bob", "bob@", None, None),
    (3, "Cy", "cy@example.org", datetime.date(2021, 1, 20), None),
]
for offset, (member, name, email, joined, notes) in enumerate(rows):
    row = 3 + offset
    if member is not None:
        sheet.write(row, 0, member)
    sheet.write(row, 1, name)
    sheet.write(row, 2, email)
    if joined is not None:
        sheet.write(row, 3, joined, date)
    if notes is not None:
        sheet.write(row, 4, notes)
book.save("members.xls")
