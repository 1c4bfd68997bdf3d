"""Generates server/callpilot/server/store/demo_data.json, the packaged demo data.

Run `.venv/bin/python tests/store/make_demo_data.py` after editing this file;
test_demo_data.py fails while the shipped JSON differs from what this makes.
The generator lives apart from the package because only developers need it;
the server just imports the JSON through the ordinary import code.

Orders and tickets are drawn with a fixed seed so the data is varied yet the
same on every run. Maria Garcia (C-1001) and her order 78901 are written out
by hand because the end-to-end tests depend on them exactly.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[2] / "server/callpilot/server/store/demo_data.json"
SEED = 20261124
AS_OF = date(2026, 11, 23)

# id, name, email local part, tier, status
CUSTOMERS = [
    ("C-1001", "Maria Garcia", "maria.garcia", "gold", "active"),
    ("C-1002", "James Whitaker", "james.whitaker", "standard", "active"),
    ("C-1003", "Aisha Khan", "aisha.khan", "platinum", "active"),
    ("C-1004", "Daniel O'Brien", "daniel.obrien", "standard", "active"),
    ("C-1005", "Mei Lin Chen", "meilin.chen", "gold", "active"),
    ("C-1006", "Robert Johnson", "robert.johnson", "standard", "active"),
    ("C-1007", "Sofia Rossi", "sofia.rossi", "standard", "active"),
    ("C-1008", "Kwame Mensah", "kwame.mensah", "gold", "active"),
    ("C-1009", "Emily Nguyen", "emily.nguyen", "standard", "active"),
    ("C-1010", "Lukas Müller", "lukas.mueller", "platinum", "active"),
    ("C-1011", "Priya Patel", "priya.patel", "standard", "active"),
    ("C-1012", "Olivia Brown", "olivia.brown", "gold", "active"),
    ("C-1013", "José Álvarez", "jose.alvarez", "standard", "active"),
    ("C-1014", "Hannah Schmidt", "hannah.schmidt", "standard", "suspended"),
    ("C-1015", "Luis Garcia", "luis.garcia", "standard", "active"),
    ("C-1016", "Chloé Dubois", "chloe.dubois", "gold", "active"),
    ("C-1017", "Michael Thompson", "michael.thompson", "standard", "active"),
    ("C-1018", "Yuki Tanaka", "yuki.tanaka", "platinum", "active"),
    ("C-1019", "Fatima Al-Sayed", "fatima.alsayed", "standard", "active"),
    ("C-1020", "Noah Williams", "noah.williams", "standard", "closed"),
    ("C-1021", "Grace Okafor", "grace.okafor", "gold", "active"),
    ("C-1022", "Ethan Park", "ethan.park", "standard", "active"),
    ("C-1023", "Isabella Martinez", "isabella.martinez", "standard", "active"),
    ("C-1024", "Oliver Bennett", "oliver.bennett", "gold", "active"),
]

PRODUCTS = [
    ("WH-100", "Wireless Headphones", "129.99"),
    ("EB-200", "Bluetooth Earbuds", "79.99"),
    ("SW-300", "Smartwatch Series 3", "249.00"),
    ("CH-110", "USB-C Fast Charger", "29.99"),
    ("CB-120", "Braided USB-C Cable (2 m)", "14.99"),
    ("PB-130", "Power Bank 20000 mAh", "49.99"),
    ("SP-400", "Portable Speaker", "89.99"),
    ("KB-500", "Mechanical Keyboard", "119.00"),
    ("MS-510", "Wireless Mouse", "39.99"),
    ("MN-600", "27-inch 4K Monitor", "379.00"),
    ("WC-700", "HD Webcam", "69.99"),
    ("TB-800", "10-inch Tablet", "329.00"),
    ("CS-810", "Tablet Case", "24.99"),
    ("LS-900", "Laptop Stand", "44.50"),
    ("HB-910", "USB-C Hub (7-in-1)", "59.99"),
]

POLICIES = [
    {
        "type": "return",
        "title": "Return policy",
        "body": (
            "Most items can be returned within 30 days of delivery for a full refund. Items must be "
            "in their original condition, with all accessories and packaging. To start a return the "
            "customer needs the order number; we email a prepaid return label within 1 business day. "
            "Opened software, gift cards and personalised items cannot be returned. Defective items "
            "can be returned or exchanged within 30 days of delivery at no cost; after 30 days they "
            "are covered by the warranty. Gold and platinum members get free return shipping on every "
            "return; standard members pay a $6.95 return shipping fee, which is waived when the item "
            "is defective or we sent the wrong item."
        ),
    },
    {
        "type": "refund",
        "title": "Refund policy",
        "body": (
            "Refunds are issued to the original payment method only. When a returned item reaches our "
            "warehouse we inspect it within 2 business days and issue the refund; card refunds then take "
            "5-7 business days to appear on the customer's statement, PayPal refunds up to 2 business "
            "days. Orders cancelled before they ship are refunded in full within 24 hours. Original "
            "shipping charges are refunded only when the return is due to a defect or our error. We "
            "cannot refund to a different card or account than the one used to pay; if that card has "
            "been closed, the issuing bank passes the refund on to the replacement card. Agents may "
            "approve a goodwill credit of up to $25 for a late delivery; larger amounts need a "
            "supervisor."
        ),
    },
    {
        "type": "warranty",
        "title": "Warranty policy",
        "body": (
            "All electronics we sell carry a 1-year limited warranty from the date of delivery, covering "
            "defects in materials and workmanship. Platinum members get an extended 2-year warranty. "
            "The warranty does not cover accidental damage, liquid damage, or damage from unauthorised "
            "repairs; batteries are covered while they hold at least 80% of their original capacity. "
            "To make a claim the customer needs the order number and a short description of the fault. "
            "We repair or replace the item within 10 business days of receiving it and pay for shipping "
            "both ways. If the same fault comes back after two repairs, we replace the item or refund "
            "the purchase price."
        ),
    },
    {
        "type": "sla",
        "title": "Service level agreement",
        "body": (
            "First response times for support tickets depend on the customer's tier: platinum within "
            "1 hour, 24/7; gold within 4 business hours; standard within 1 business day. Business hours "
            "are Monday to Friday, 8:00-20:00 Eastern Time. Calls are answered on average within 60 "
            "seconds for platinum, 2 minutes for gold and 5 minutes for standard customers. We aim to "
            "resolve 90% of tickets within 3 business days, and shipping and refund issues within 2 "
            "business days. Tickets waiting on the customer are closed after 7 days without a reply. "
            "A customer whose ticket misses its first-response target by more than one business day "
            "may be offered a $10 store credit."
        ),
    },
]

ARTICLES = [
    (
        "How to start a return",
        ["return", "return label", "rma"],
        "Customers can return most items within 30 days of delivery. Look up the order by its number and "
        "confirm the delivery date is within the return window. Create the return in the order screen "
        "and choose the reason; the customer receives a prepaid return label by email within 1 business "
        "day. Ask the customer to pack the item with all accessories and drop it at any carrier location. "
        "Gold and platinum members never pay return shipping.",
    ),
    (
        "When will my refund arrive?",
        ["refund", "card", "payment", "refund timeline"],
        "Refunds always go back to the original payment method, such as the credit or debit card used at "
        "checkout. We issue the refund within 2 business days of receiving the returned item. A refund to "
        "a card takes 5-7 business days to show on the statement, depending on the bank. PayPal refunds "
        "arrive within 2 business days. If more than 7 business days have passed, give the customer the "
        "refund reference from the order screen so their bank can trace it.",
    ),
    (
        "Tracking a shipment",
        ["shipping", "tracking", "delivery"],
        "Every shipped order has a tracking number on the order screen. Tracking updates can take up to "
        "24 hours to appear after the label is created. Standard shipping takes 3-5 business days and "
        "express shipping 1-2 business days. If tracking has not moved for 4 business days, open a trace "
        "with the carrier from the order screen.",
    ),
    (
        "Package marked delivered but not received",
        ["shipping", "delivery", "missing package", "lost"],
        "Ask the customer to check with neighbours, the building's mailroom and any safe place the driver "
        "may have used. Carriers sometimes mark a parcel delivered up to 24 hours before it arrives. If it "
        "has not turned up after 48 hours, file a lost-package claim; we ship a replacement or refund the "
        "order once the claim is filed, without waiting for the carrier's investigation.",
    ),
    (
        "Damaged or defective item on arrival",
        ["damaged", "defective", "replacement", "return"],
        "Apologise and ask for a photo of the damage and the packaging. Items that arrive damaged or "
        "defective can be exchanged or refunded within 30 days of delivery at no cost to the customer. "
        "Offer a replacement first; if the item is out of stock, refund it in full including shipping. "
        "After 30 days, handle the fault as a warranty claim.",
    ),
    (
        "Making a warranty claim",
        ["warranty", "repair", "defect"],
        "Electronics carry a 1-year limited warranty from delivery, 2 years for platinum members. Check the "
        "delivery date on the order, then create a warranty case with a description of the fault. We send "
        "a prepaid label and repair or replace the item within 10 business days of receiving it. Accidental "
        "and liquid damage are not covered.",
    ),
    (
        "Changing the shipping address of an order",
        ["shipping", "address", "order change"],
        "The shipping address can be changed while an order is still processing. Once the order has "
        "shipped, the address can only be changed through the carrier's redirect service, which may add "
        "1-2 days. Always confirm the new address back to the customer, including the postcode.",
    ),
    (
        "Cancelling an order",
        ["cancellation", "cancel order", "refund"],
        "Orders can be cancelled free of charge until they ship. Cancel from the order screen; the full "
        "amount is refunded to the original payment method within 24 hours. If the order has already "
        "shipped, the customer can refuse the delivery or return it within 30 days of delivery.",
    ),
    (
        "Resetting an account password",
        ["account", "password", "login"],
        "Send the password reset link from the customer's profile; it expires after 30 minutes. If the "
        "email does not arrive, check the spam folder and confirm the email address on file. Never read "
        "a password or a one-time code to the customer over the phone.",
    ),
    (
        "Updating payment methods and billing address",
        ["billing", "payment", "card", "account"],
        "Customers add and remove cards in their account under Payment methods; agents cannot see or take "
        "full card numbers. A new billing address applies to future orders only. If a payment was "
        "declined, ask the customer to check the billing address matches the one their bank holds.",
    ),
    (
        "Pairing Wireless Headphones (WH-100) with a phone",
        ["headphones", "bluetooth", "pairing", "technical"],
        "Turn the headphones off, then press and hold the power button for 5 seconds until the light "
        "flashes blue and red. On the phone, open Bluetooth settings and choose WH-100. If pairing fails, "
        "remove WH-100 from the phone's list of devices and try again. A reset (power and volume down for "
        "10 seconds) clears old pairings.",
    ),
    (
        "Headphones not charging or battery draining fast",
        ["headphones", "battery", "charging", "technical"],
        "Use the supplied USB-C cable and a 5 V charger; the light turns solid white when charging. A full "
        "charge takes about 2 hours and lasts up to 30 hours of playback. If the battery drains in under "
        "10 hours, update the firmware from the companion app. If that does not help, the battery is "
        "covered by the warranty.",
    ),
    (
        "Price adjustments and price matching",
        ["billing", "price adjustment", "refund"],
        "If an item's price drops within 14 days of purchase, we refund the difference to the original "
        "payment method. We do not match other retailers' prices. Price adjustments do not apply to "
        "clearance or flash-sale prices.",
    ),
    (
        "Gift cards and store credit",
        ["gift card", "store credit", "billing"],
        "Gift cards and store credit never expire and can be combined with a card payment at checkout. "
        "Lost gift cards can be replaced when the customer has the purchase receipt. Store credit issued "
        "as a goodwill gesture appears on the account within 1 hour.",
    ),
    (
        "Wrong or missing item in an order",
        ["order", "wrong item", "missing item", "shipping"],
        "Compare what the customer received with the items on the order. For a wrong item, send the "
        "right one straight away and email a prepaid label for the wrong one. For a missing item, check "
        "whether the order shipped in several parcels before reshipping it. Neither case costs the "
        "customer anything.",
    ),
]

TICKET_SUBJECTS = {
    "delivered": [
        "Order {n} arrived damaged",
        "Return request for order {n}",
        "{p} stopped working",
        "Missing item from order {n}",
        "Wrong item received in order {n}",
        "Warranty question about {p}",
    ],
    "refunded": ["Refund not received yet for order {n}"],
    "shipped": ["Where is my order {n}?", "Tracking not updating for order {n}"],
    "processing": ["Change shipping address for order {n}", "Please cancel order {n}"],
    "cancelled": ["Refund status for cancelled order {n}"],
}
ACCOUNT_SUBJECTS = [
    "Password reset email not arriving",
    "Update billing address",
    "Card declined at checkout",
]


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _stamp(day: date, rng: random.Random) -> str:
    moment = datetime.combine(day, time(rng.randint(8, 19), rng.randint(0, 59)))
    return moment.strftime("%Y-%m-%dT%H:%M:00Z")


def build() -> dict[str, object]:
    """The whole demo document, deterministically."""
    rng = random.Random(SEED)
    customers = [
        {
            "id": cid,
            "name": name,
            "email": f"{local}@example.com",
            "phone": f"+1555010{int(cid[2:]) - 900:04d}",
            "tier": tier,
            "status": status,
        }
        for cid, name, local, tier, status in CUSTOMERS
    ]
    orders: list[dict[str, object]] = [
        {
            "number": "78901",
            "customer_id": "C-1001",
            "status": "delivered",
            "total": "129.99",
            "currency": "USD",
            "order_date": "2026-10-28",
            "delivered_date": "2026-11-02",
            "items": [
                {"sku": "WH-100", "name": "Wireless Headphones", "quantity": 1, "unit_price": "129.99"}
            ],
        }
    ]
    used = {"78901"}
    others = [c for c in CUSTOMERS if c[0] != "C-1001"]
    start = date(2026, 5, 1)  # earliest order date
    for i in range(63):
        customer_id = others[i % len(others)][0] if i < len(others) else rng.choice(others)[0]
        number = "78901"
        while number in used:
            number = str(rng.randint(10000, 99999))
        used.add(number)
        # Skewed towards recent orders, as a real order history is.
        ordered = AS_OF - timedelta(days=round(rng.triangular(1, (AS_OF - start).days, 6)))
        age = (AS_OF - ordered).days
        if age <= 3:
            status = "processing"
        elif age <= 10:
            status = rng.choice(["shipped", "shipped", "processing"])
        else:
            status = rng.choices(["delivered", "cancelled", "refunded"], weights=[16, 2, 2])[0]
        delivered = None
        if status in ("delivered", "refunded"):
            delivered = (ordered + timedelta(days=rng.randint(2, 7))).isoformat()
        items = []
        for sku, name, price in rng.sample(PRODUCTS, rng.choice([1, 1, 1, 2, 2, 3])):
            items.append(
                {"sku": sku, "name": name, "quantity": rng.choice([1, 1, 1, 2]), "unit_price": price}
            )
        total = sum((Decimal(str(it["unit_price"])) * int(str(it["quantity"])) for it in items), Decimal(0))
        orders.append(
            {
                "number": number,
                "customer_id": customer_id,
                "status": status,
                "total": _money(total),
                "currency": "USD",
                "order_date": ordered.isoformat(),
                "delivered_date": delivered,
                "items": items,
            }
        )
    orders.sort(key=lambda o: (str(o["order_date"]), str(o["number"])))

    tickets = []
    candidates = [o for o in orders if o["customer_id"] != "C-1001"]
    for i in range(32):
        ticket_number = 5001 + i
        if i % 8 == 7:
            customer_id = rng.choice(others)[0]
            subject = rng.choice(ACCOUNT_SUBJECTS)
            opened = AS_OF - timedelta(days=rng.randint(0, 120))
        else:
            order = rng.choice(candidates)
            customer_id = str(order["customer_id"])
            template = rng.choice(TICKET_SUBJECTS[str(order["status"])])
            lines = order["items"]
            assert isinstance(lines, list)
            subject = template.format(n=order["number"], p=lines[0]["name"])
            after = date.fromisoformat(str(order["delivered_date"] or order["order_date"]))
            opened = min(after + timedelta(days=rng.randint(0, 20)), AS_OF)
        age = (AS_OF - opened).days
        status = "open" if age <= 6 else ("pending" if age <= 20 else "closed")
        tickets.append(
            {
                "id": f"T-{ticket_number}",
                "customer_id": customer_id,
                "subject": subject,
                "status": status,
                "created_at": _stamp(opened, rng),
            }
        )

    articles = [
        {"id": f"KB-{i:03d}", "title": title, "body": body, "tags": tags}
        for i, (title, tags, body) in enumerate(ARTICLES, start=1)
    ]
    return {
        "customers": customers,
        "orders": orders,
        "tickets": tickets,
        "policies": POLICIES,
        "articles": articles,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
