"""Small word lists shared by the lexical parts (BM25 terms, the extractive answerer's overlap, support check)."""

from __future__ import annotations

# Irregular inflections folded to their base form, so "How many troops did China send?" matches "has sent".
IRREGULAR: dict[str, str] = dict(
    pair.split(":")
    for pair in (
        "sent:send took:take taken:take went:go gone:go made:make said:say held:hold built:build began:begin "
        "begun:begin won:win led:lead found:find paid:pay sold:sell bought:buy brought:bring gave:give given:give "
        "wrote:write written:write ran:run became:become told:tell left:leave met:meet kept:keep spent:spend "
        "grew:grow grown:grow fell:fall known:know knew:know shown:show saw:see seen:see chose:choose "
        "chosen:choose drew:draw drawn:draw flew:fly thought:think taught:teach caught:catch fought:fight "
        "stood:stand lost:lose meant:mean rose:rise risen:rise struck:strike spoke:speak spoken:speak "
        "children:child men:man women:woman people:person died:die born:bear"
    ).split()
)
