"""ITU-T G.107 E-model, simplified for monitoring: R-factor and MOS from codec, loss and delay.

Pure functions (no I/O, no clock). With every G.107 default parameter except the codec, the
packet loss and the one-way delay, the rating reduces to::

    R = (R0 - Is) - Id - Ie,eff + A           R0 - Is = 93.2 (G.107 defaults), A = 0
    Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)       (G.107 eq. 7-29)
    Id ~ 0.024 d + 0.11 (d - 177.3) H(d - 177.3)               (d: one-way delay in ms)
    MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6   for 0 < R < 100 (G.107 Annex B);
          1 for R <= 0, 4.5 for R >= 100

Ppl is the packet-loss probability in percent, BurstR the burst ratio (1 for random loss).
The Id line is the usual linearisation of G.107's delay terms with default echo values
(Cole and Rosenbluth, "Voice over IP performance monitoring", ACM SIGCOMM CCR 31(2), 2001).
Codec values (Ie, Bpl) and the choices made for wideband codecs: :data:`CODECS`, docs/media.md.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CODECS", "R_DEFAULT", "Codec", "codec_for", "delay_impairment", "mos", "r_factor"]

R_DEFAULT = 93.2  # R0 - Is with all G.107 default values (G.107 Table 3)


@dataclass(frozen=True, slots=True)
class Codec:
    """Equipment impairment Ie and packet-loss robustness Bpl (ITU-T G.113 Appendix I)."""

    name: str
    ie: float
    bpl: float


# Keys: lower-case SDP encoding names (a=rtpmap / RFC 3551 static names).
CODECS: dict[str, Codec] = {
    # G.711 with packet loss concealment (G.711 Appendix I): G.113 Appendix I, Bpl 25.1.
    "pcmu": Codec("G.711", 0.0, 25.1),
    "pcma": Codec("G.711", 0.0, 25.1),
    # G.729 / G.729A (+VAD): G.113 Appendix I, Ie 11, Bpl 19.0.
    "g729": Codec("G.729", 11.0, 19.0),
    # Wideband codecs on the narrowband scale (a documented choice, docs/media.md): G.107's
    # narrowband R cannot credit wideband speech (that is G.107.1's scale, up to 129), so
    # G.722 and Opus are rated like G.711 with PLC -- never better than narrowband G.711.
    "g722": Codec("G.722", 0.0, 25.1),
    "opus": Codec("Opus", 0.0, 25.1),
}
# G.711 without concealment (G.113 Appendix I, Bpl 4.3): also the rating of unknown codecs,
# the most loss-sensitive entry, so an unknown codec is never rated better than it may be.
G711_NO_PLC = Codec("G.711 (no PLC)", 0.0, 4.3)


def codec_for(encoding: str) -> Codec:
    """The E-model values of an SDP encoding name; unknown names get :data:`G711_NO_PLC`."""
    return CODECS.get(encoding.lower(), G711_NO_PLC)


def delay_impairment(one_way_ms: float) -> float:
    """Id from the one-way mouth-to-ear delay in ms (linearised G.107, module docstring)."""
    d = max(0.0, one_way_ms)
    return 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)


def r_factor(
    codec: Codec, loss_ratio: float, one_way_ms: float = 0.0, burst_r: float = 1.0
) -> float:
    """R for a codec, a packet-loss ratio (0..1), a one-way delay and a burst ratio."""
    ppl = min(max(loss_ratio, 0.0), 1.0) * 100.0
    burst = burst_r if burst_r > 0 else 1.0
    ie_eff = codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst + codec.bpl)
    return R_DEFAULT - delay_impairment(one_way_ms) - ie_eff


def mos(r: float) -> float:
    """Estimated MOS (conversational quality, G.107 Annex B) from R."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
