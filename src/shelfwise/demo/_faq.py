"""The demo shop's customer-service FAQ (`faq.csv`, what `shelfwise ask` answers from) and a set
of labeled shopper questions (`faq_questions.csv`, for `shelfwise report ask --questions`): worded
as shoppers write, not copied from the FAQ, some with no entry that answers them (they must get
no answer). Fixed text, not random: the same demo shop always has the same FAQ."""

from __future__ import annotations

import csv
from pathlib import Path

# faq_id, question, answer (the shop's own words: curated as written, line breaks kept)
FAQ_ENTRIES: tuple[tuple[str, str, str], ...] = (
    (
        "track_order",
        "How do I track my order?",
        "Open Orders in your account and choose the order: the tracking link appears once the parcel "
        "has left our warehouse, usually within one working day.",
    ),
    (
        "delivery_time",
        "How long does delivery take?",
        "Standard delivery takes 2-4 working days, express delivery the next working day when you "
        "order before 2 pm. Orders to Germany, France and the US take 3-6 working days.",
    ),
    (
        "delivery_cost",
        "How much does shipping cost?",
        "Standard delivery is free on orders over 50.00; below that it costs 3.99. Express delivery "
        "costs 7.99 whatever the order value.",
    ),
    (
        "return_item",
        "How do I return an item?",
        "You can return any item within 30 days of delivery:\n1. Open Orders in your account.\n"
        "2. Choose Return next to the item and print the label.\n3. Drop the parcel at any post office.",
    ),
    (
        "refund_time",
        "When will I get my refund?",
        "We refund to the original payment method within 5 working days of receiving your return. "
        "Your bank may take a few more days to show it.",
    ),
    (
        "exchange",
        "Can I exchange an item for another size or colour?",
        "Yes: return the item as usual and place a new order for the size or colour you want. That "
        "way the new one is sent at once instead of after the return arrives.",
    ),
    (
        "damaged_item",
        "My item arrived damaged or faulty. What should I do?",
        "We are sorry! Send us a photo of the damage within 14 days of delivery at "
        "help@shelfwise-demo.example and we send a replacement or refund you in full, return "
        "shipping included.",
    ),
    (
        "cancel_order",
        "Can I cancel my order?",
        "You can cancel an order in your account until it is packed, usually within an hour of "
        "ordering. After that, return it when it arrives.",
    ),
    (
        "change_address",
        "Can I change the delivery address of an order?",
        "Until the order is packed you can change its address under Orders in your account. "
        "Afterwards please call us on +44 20 7946 0000 and we ask the carrier.",
    ),
    (
        "payment_methods",
        "Which payment methods do you accept?",
        "We accept Visa, Mastercard, American Express, PayPal and bank transfer. Card details are "
        "never stored by us.",
    ),
    (
        "payment_declined",
        "Why was my payment declined?",
        "Most declined payments come from a billing address that differs from the one your bank "
        "has, or from a card limit. Check both, or try another payment method.",
    ),
    (
        "invoice",
        "How do I get an invoice for my order?",
        "Every order's invoice is a PDF under Orders in your account, ready once the order ships.",
    ),
    (
        "warranty",
        "What warranty do electronics come with?",
        "All electronics carry the maker's 2-year warranty. Keep your invoice: it is your proof of "
        "purchase for a repair or replacement.",
    ),
    (
        "out_of_stock",
        "When will an out-of-stock product be available again?",
        "Choose Notify me on the product page and we e-mail you as soon as it is back in stock. We "
        "cannot promise dates for restocks.",
    ),
    (
        "price_match",
        "Do you match lower prices from other shops?",
        "We do not match other shops' prices, but our prices follow the market and change often.",
    ),
    (
        "discount_code",
        "How do I use a discount code?",
        "Enter the code in the Discount code field at checkout before you pay. One code per order; "
        "codes do not apply to orders already placed.",
    ),
    (
        "create_account",
        "Do I need an account to order?",
        "No, you can check out as a guest. An account lets you track orders, return items and see "
        "invoices in one place.",
    ),
    (
        "reset_password",
        "I forgot my password. How do I reset it?",
        "Choose Forgot password on the sign-in page and we e-mail you a link to set a new one. The "
        "link is valid for one hour.",
    ),
    (
        "delete_account",
        "How do I delete my account and my data?",
        "Write to privacy@shelfwise-demo.example from the e-mail address of your account and we "
        "erase your account and personal data within 30 days.",
    ),
    (
        "newsletter",
        "How do I unsubscribe from the newsletter?",
        "Use the Unsubscribe link at the bottom of any newsletter, or turn marketing e-mails off "
        "under Preferences in your account.",
    ),
    (
        "contact",
        "How can I contact customer service?",
        "Call us on +44 20 7946 0000 (Monday to Friday, 9 am to 6 pm) or write to "
        "help@shelfwise-demo.example: we answer within one working day.",
    ),
)

# question_id, question as a shopper writes it, the entry that answers it ("" = none does)
LABELED_QUESTIONS: tuple[tuple[str, str, str], ...] = (
    ("q01", "where is my parcel", "track_order"),
    ("q02", "tracking number for order?", "track_order"),
    ("q03", "how many days until my stuff arrives", "delivery_time"),
    ("q04", "do you deliver next day", "delivery_time"),
    ("q05", "is shipping free", "delivery_cost"),
    ("q06", "what are the postage charges", "delivery_cost"),
    ("q07", "i want to send back the headphones i bought", "return_item"),
    ("q08", "return policy please", "return_item"),
    ("q09", "still waiting for my money back after returning", "refund_time"),
    ("q10", "how long do refunds take", "refund_time"),
    ("q11", "the blanket is too small, can i swap it for a bigger one", "exchange"),
    ("q12", "the kettle came broken", "damaged_item"),
    ("q13", "screen of my laptop was cracked on arrival", "damaged_item"),
    ("q14", "i ordered by mistake, please cancel", "cancel_order"),
    ("q15", "wrong address on my order", "change_address"),
    ("q16", "can i pay with paypal", "payment_methods"),
    ("q17", "do you take amex", "payment_methods"),
    ("q18", "my card keeps getting rejected", "payment_declined"),
    ("q19", "need a receipt for my company", "invoice"),
    ("q20", "is there a guarantee on the blender", "warranty"),
    ("q21", "when is the coffee maker back in stock", "out_of_stock"),
    ("q22", "found it cheaper elsewhere, will you match", "price_match"),
    ("q23", "my promo code does not work", "discount_code"),
    ("q24", "can i buy without registering", "create_account"),
    ("q25", "cannot log in, lost my password", "reset_password"),
    ("q26", "please remove all my personal data", "delete_account"),
    ("q27", "stop sending me emails", "newsletter"),
    ("q28", "what is your phone number", "contact"),
    ("q29", "do you have a shop in Paris", ""),
    ("q30", "can i pay in instalments with klarna", ""),
    ("q31", "do you sell gift cards", ""),
    ("q32", "are your products vegan", ""),
)

FAQ_FILE = "faq.csv"
QUESTIONS_FILE = "faq_questions.csv"


def write_faq(out: Path) -> None:
    """`faq.csv` and `faq_questions.csv` into the demo shop's directory `out`."""
    with open(out / FAQ_FILE, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["faq_id", "question", "answer"])
        w.writerows(FAQ_ENTRIES)
    with open(out / QUESTIONS_FILE, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question_id", "question", "faq_id"])
        w.writerows(LABELED_QUESTIONS)
