"""A small customer-service thesaurus: words that mean the same thing to a help desk, across
English, Chinese (Simplified, as after folding) and Thai, each group read as one concept.

Customers rarely use an article's words: "money back" for a refund, 退錢 or 退费 for 退款,
ขอเงินคืน for คืนเงิน, "top up" / 增值 / 儲值 / เติมเงิน for the same thing, and Hong Kong
customers mix English into Chinese ("cancel 張單"). Every member of a group becomes the group's
concept token (``~refund``) in articles and queries alike, so any of them matches any other,
in any of the three languages.

Kept deliberately small and domain-wide (orders, delivery, payment, accounts, telecoms,
bookings, opening hours): vocabulary a help desk of any business shares, not the words of one
evaluation set. English members are stemmed before matching (phrases of up to three words);
Chinese and Thai members are added to the segmenters' dictionaries so they stay whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Concept:
    """One meaning and the words that carry it in each language."""

    name: str
    en: tuple[str, ...] = ()
    zh: tuple[str, ...] = ()
    th: tuple[str, ...] = ()

    @property
    def token(self) -> str:
        return f"~{self.name}"


CONCEPTS: Final[tuple[Concept, ...]] = (
    Concept(
        "refund",
        en=("refund", "refunded", "refunding", "money back", "reimburse", "reimbursement"),
        zh=("退款", "退费", "退还款项", "退回款项"),
        th=("คืนเงิน", "เงินคืน", "ขอเงินคืน", "รีฟันด์"),
    ),
    Concept(
        "return",
        en=("return", "returns", "returned", "send back", "send it back"),
        zh=("退货", "退回", "寄回"),
        th=("คืนสินค้า", "ส่งคืน", "ส่งกลับ"),
    ),
    Concept(
        "delivery",
        en=(
            "delivery",
            "deliver",
            "delivered",
            "shipping",
            "ship",
            "shipped",
            "shipment",
            "dispatch",
            "courier",
        ),
        zh=("送货", "配送", "派送", "运送", "寄送", "发货", "出货", "快递", "速递", "物流", "送递"),
        th=("จัดส่ง", "การจัดส่ง", "ส่งของ", "ขนส่ง", "ส่งพัสดุ"),
    ),
    Concept(
        "parcel",
        en=("parcel", "package", "packet"),
        zh=("包裹", "快件", "邮包", "货件"),
        th=("พัสดุ", "กล่องพัสดุ"),
    ),
    Concept("address", en=("address",), zh=("地址",), th=("ที่อยู่",)),
    Concept(
        "order",
        en=("order", "orders", "purchase"),
        zh=("订单", "下单", "订购"),
        th=("คำสั่งซื้อ", "ออเดอร์", "สั่งซื้อ"),
    ),
    Concept(
        "cancel",
        en=("cancel", "cancellation", "cancelation", "cancelled", "canceled"),
        zh=("取消", "撤销", "退订"),
        th=("ยกเลิก", "แคนเซิล"),
    ),
    Concept(
        "password",
        en=("password", "passcode", "pwd", "pin"),
        zh=("密码",),
        th=("รหัสผ่าน", "พาสเวิร์ด", "พาสเวิด"),
    ),
    Concept(
        "login",
        en=("login", "log in", "logon", "sign in", "signin"),
        zh=("登录", "登陆"),
        th=("เข้าสู่ระบบ", "ล็อกอิน", "ล็อคอิน"),
    ),
    Concept(
        "account",
        en=("account",),
        zh=("账户", "帐户", "账号", "帐号"),
        th=("บัญชี", "แอคเคาท์", "บัญชีผู้ใช้"),
    ),
    Concept(
        "forget",
        en=("forget", "forgot", "forgotten"),
        zh=("忘记", "忘了", "记不起"),
        th=("ลืม",),
    ),
    Concept("reset", en=("reset",), zh=("重设", "重置"), th=("รีเซ็ต", "ตั้งใหม่")),
    Concept(
        "topup",
        en=("top up", "topup", "top-up", "recharge", "reload", "add credit", "add value"),
        zh=("充值", "增值", "储值", "加值"),
        th=("เติมเงิน", "ท็อปอัพ"),
    ),
    Concept(
        "sim",
        en=("sim", "sim card"),
        zh=("电话卡", "手机卡", "sim卡"),
        th=("ซิม", "ซิมการ์ด"),
    ),
    Concept(
        "pay",
        en=("pay", "paid", "paying", "payment", "payments"),
        zh=("付款", "支付", "付钱", "缴费", "交费", "给钱"),
        th=("ชำระเงิน", "จ่ายเงิน", "ชำระ", "จ่าย", "การชำระเงิน"),
    ),
    Concept(
        "creditcard",
        en=("credit card", "debit card", "visa", "mastercard"),
        zh=("信用卡", "刷卡", "扣账卡"),
        th=("บัตรเครดิต", "บัตรเดบิต"),
    ),
    Concept(
        "open",
        en=("open", "opening", "opens", "business hours", "opening hours", "closing time"),
        zh=("营业", "开门", "开放时间", "营业时间", "办公时间", "关门"),
        th=("เปิด", "เวลาทำการ", "เวลาเปิด", "เปิดทำการ", "ปิดกี่โมง"),
    ),
    Concept(
        "booking",
        en=("book", "booking", "reservation", "reserve", "appointment"),
        zh=("预约", "预订", "订位", "订座", "预定", "订房"),
        th=("จอง", "การจอง", "นัดหมาย", "นัด"),
    ),
    Concept(
        "receipt",
        en=("invoice", "receipt", "tax invoice"),
        zh=("发票", "收据", "单据"),
        th=("ใบเสร็จ", "ใบกำกับภาษี", "ใบเสร็จรับเงิน"),
    ),
    Concept(
        "change",
        en=("change", "modify", "amend", "edit"),
        zh=("更改", "修改", "改", "变更", "更换", "改变"),
        th=("เปลี่ยน", "แก้ไข", "แก้"),
    ),
    Concept(
        "track",
        en=("track", "tracking", "trace"),
        zh=("追踪", "跟踪", "查件", "追查"),
        th=("ติดตาม", "เช็คสถานะ", "ตามพัสดุ"),
    ),
    Concept(
        "damaged",
        en=(
            "damaged",
            "damage",
            "broken",
            "defective",
            "faulty",
            "cracked",
            "smashed",
            "shattered",
        ),
        zh=("损坏", "坏了", "破损", "烂了", "坏掉"),
        th=("เสียหาย", "แตก", "ชำรุด", "พัง"),
    ),
    Concept(
        "human",
        en=("human", "real person", "live agent", "representative", "customer service"),
        zh=("客服", "人工", "真人", "人工客服"),
        th=("พนักงาน", "เจ้าหน้าที่", "คุยกับคน"),
    ),
    Concept(
        "phone",
        en=("phone", "mobile", "cellphone", "phone number"),
        zh=("手机", "电话", "手提电话", "手提"),
        th=("โทรศัพท์", "มือถือ", "เบอร์โทร", "เบอร์"),
    ),
    Concept(
        "email",
        en=("email", "e-mail", "mail"),
        zh=("电邮", "邮箱", "电子邮件", "邮件"),
        th=("อีเมล", "อีเมล์", "เมล"),
    ),
    Concept(
        "fee",
        en=("fee", "fees", "charge", "charges", "cost", "price"),
        zh=("费用", "收费", "价钱", "价格", "多少钱", "手续费"),
        th=("ค่าธรรมเนียม", "ค่าบริการ", "ราคา", "ค่าใช้จ่าย"),
    ),
    Concept(
        "coupon",
        en=("coupon", "voucher", "promo code", "discount code", "promotion code"),
        zh=("优惠券", "优惠码", "折扣码", "现金券", "优惠劵"),
        th=("คูปอง", "โค้ดส่วนลด", "โค้ด"),
    ),
    Concept("roaming", en=("roaming",), zh=("漫游",), th=("โรมมิ่ง",)),
    Concept(
        "points",
        en=("points", "reward points", "loyalty points"),
        zh=("积分",),
        th=("แต้ม", "คะแนนสะสม"),
    ),
    Concept(
        "warranty",
        en=("warranty", "guarantee", "repair"),
        zh=("保修", "维修", "保用", "保养"),
        th=("ประกัน", "รับประกัน", "ซ่อม"),
    ),
    Concept(
        "exchange",
        en=("exchange", "swap"),
        zh=("换货", "调换", "换尺码"),
        th=("เปลี่ยนสินค้า", "แลกเปลี่ยน"),
    ),
    Concept(
        "internet",
        en=("internet", "wifi", "wi-fi", "broadband", "mobile data"),
        zh=("上网", "网络", "宽频", "宽带", "流量"),
        th=("อินเทอร์เน็ต", "เน็ต", "ไวไฟ"),
    ),
    Concept(
        "bill",
        en=("bill", "billing", "statement"),
        zh=("账单", "月结单", "帐单"),
        th=("บิล", "ใบแจ้งหนี้"),
    ),
    Concept(
        "late",
        en=("late", "delay", "delayed", "slow", "not arrived", "hasnt arrived", "hasn't arrived"),
        zh=("延迟", "延误", "迟到", "还没到", "未到", "未收到", "没收到"),
        th=("ล่าช้า", "ช้า", "ยังไม่ได้รับ", "ยังไม่มา"),
    ),
)
"""The groups; a word belongs to one group at most (checked by the tests)."""
