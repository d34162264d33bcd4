"""The E-model (src/sip_otel/media/emodel.py) against values worked out by hand from the G.107
formulas in its docstring, and G.107's known point R = 93.2 -> MOS 4.41."""

from __future__ import annotations

import pytest

from sip_otel.media.emodel import G711_NO_PLC, Codec, codec_for, delay_impairment, mos, r_factor

G711 = codec_for("PCMU")
G729 = codec_for("G729")


def test_defaults_give_g107_reference_point() -> None:
    assert r_factor(G711, 0.0) == pytest.approx(93.2)
    # 1 + 0.035*93.2 + 93.2*33.2*6.8*7e-6 = 1 + 3.262 + 0.147285824
    assert mos(93.2) == pytest.approx(4.409285824)
    assert round(mos(93.2), 2) == 4.41


def test_codec_impairment() -> None:
    # G.729: R = 93.2 - 11 = 82.2; MOS = 1 + 2.877 + 82.2*22.2*17.8*7e-6 (= 0.227375064)
    assert r_factor(G729, 0.0) == pytest.approx(82.2)
    assert mos(82.2) == pytest.approx(4.104375064)


def test_random_loss() -> None:
    # G.711 with PLC, 1 % random loss: Ie,eff = 95 * 1 / (1 + 25.1) = 3.639846743
    assert r_factor(G711, 0.01) == pytest.approx(93.2 - 3.639846743)
    # without PLC: 95 * 1 / (1 + 4.3) = 17.924528302
    assert r_factor(G711_NO_PLC, 0.01) == pytest.approx(93.2 - 17.924528302)
    # G.729, 5 %: 11 + 84 * 5 / (5 + 19) = 11 + 17.5 = 28.5
    assert r_factor(G729, 0.05) == pytest.approx(64.7)


def test_bursty_loss() -> None:
    # G.711 PLC, 2 % loss, BurstR 2: Ie,eff = 95 * 2 / (2/2 + 25.1) = 190 / 26.1 = 7.279693487
    assert r_factor(G711, 0.02, burst_r=2.0) == pytest.approx(93.2 - 7.279693487)


def test_delay() -> None:
    assert delay_impairment(0) == 0
    assert delay_impairment(100) == pytest.approx(2.4)
    # 200 ms: 0.024*200 + 0.11*(200 - 177.3) = 4.8 + 2.497
    assert delay_impairment(200) == pytest.approx(7.297)
    assert r_factor(G711, 0.0, one_way_ms=200) == pytest.approx(93.2 - 7.297)


def test_mos_bounds() -> None:
    assert mos(-5) == 1.0
    assert mos(0) == 1.0
    assert mos(100) == 4.5
    assert mos(120) == 4.5
    # R = 50: 1 + 1.75 + 50*(-10)*50*7e-6 = 2.75 - 0.175
    assert mos(50) == pytest.approx(2.575)


def test_codec_table_and_fallback() -> None:
    assert codec_for("pcma") == Codec("G.711", 0.0, 25.1)
    assert codec_for("OPUS").bpl == 25.1
    assert codec_for("G722").ie == 0.0
    assert codec_for("AMR-WB") is G711_NO_PLC
    # all loss: Ie,eff -> 95 * 100 / (100 + Bpl)
    assert r_factor(G711, 1.0) == pytest.approx(93.2 - 9500 / 125.1)
