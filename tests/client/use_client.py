"""A client generated from docs/openapi.json (openapi-python-client), used as an integrator
would: list customers, page through them, read a sales summary. Type-checked with mypy
before it runs. Needs SHOWPASS_API_URL and SHOWPASS_API_KEY; the client is importable as
`showpass_client`."""

import os
import sys

from showpass_client import AuthenticatedClient
from showpass_client.api.customers import list_customers
from showpass_client.api.sales import sales_summary
from showpass_client.models import PageCustomerOut, SalesSummary


def main() -> int:
    client = AuthenticatedClient(
        base_url=os.environ["SHOWPASS_API_URL"], token=os.environ["SHOWPASS_API_KEY"]
    )
    first = list_customers.sync(client=client, limit=5)
    if not isinstance(first, PageCustomerOut) or not first.items:
        print(f"no customers: {first!r}")
        return 1
    seen = {c.id for c in first.items}
    if not isinstance(first.next_cursor, str):
        print("the traffic holds more than 5 customers, yet there is no next page")
        return 1
    second = list_customers.sync(client=client, limit=5, cursor=first.next_cursor)
    if not isinstance(second, PageCustomerOut):
        print(f"the second page failed: {second!r}")
        return 1
    if not second.items or seen & {c.id for c in second.items}:
        print("the second page is empty, or repeats a customer")
        return 1
    summary = sales_summary.sync(client=client, group_by="event")
    if not isinstance(summary, SalesSummary) or not summary.totals:
        print(f"no sales: {summary!r}")
        return 1
    for total in summary.totals:
        print(f"{total.currency}: {total.orders} orders, net {total.net_sales}")
    print(f"{len(first.items)} customers on the first page, {len(summary.rows)} sales rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
