"""Generated import files, shared by the import tests and bench/imports.py."""

from __future__ import annotations


def shopify_csv(rows: int, bad_every: int = 100) -> tuple[bytes, list[int]]:
    """A Shopify export of `rows` customers, one in `bad_every` bad; (file, bad row numbers)."""
    header = (
        "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,"
        "Default Address Address1,Default Address Address2,Default Address City,"
        "Default Address Province Code,Default Address Country Code,Default Address Zip,"
        "Default Address Phone,Phone,Accepts SMS Marketing,Total Spent,Total Orders,Note,Tax Exempt,Tags\n"
    )
    lines, bad = [header], []
    for i in range(rows):
        email, orders = f"customer{i:06d}@bulk.example.com", str(i % 40)
        if i % bad_every == bad_every - 1:
            bad.append(i + 2)
            kind = (i // bad_every) % 3
            if kind == 0:
                email = f"customer{i:06d}.bulk.example.com"
            elif kind == 1:
                orders = "many"
            else:
                email = f"customer{i - 1:06d}@bulk.example.com"  # the row above: a duplicate
        lines.append(
            f"'{6000000 + i},First{i},Last{i},{email},yes,,{i} Main Street,,Springfield,IL,US,62701,,"
            f'+1 555 {i % 10000:04d},no,{i % 500}.25,{orders},"Note for, customer {i}",no,'
            f'"tag{i % 7}, bulk"\n'
        )
    return "".join(lines).encode(), bad
