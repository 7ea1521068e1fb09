#pragma once
// The polynomial gate over Z_2^64: y = a*x^2 + b*x + c per element, with the
// coefficients of the element's channel, which are the server's (model
// weights, the site's parameter "<site>.poly", [3, C], rows a, b, c). The
// client must not learn them, the server must not learn x. One round, one
// word per element each way; docs/private_inference.md ("Polynomial")
// derives it.
//
// What it builds on: the masked openings and the dealer of this runtime's
// linear layers (both parties know x^ = x + r, only the dealer knows r; the
// server masks its weights once per key set, W^ = W + A), applied to the
// product of the server's coefficient and the dealer's mask, and SecureML's
// local truncation (Mohassel and Zhang, IEEE S&P 2017). No other framework's
// code.
//
// Protocol. With y = x^ (public), x = y - r, so x^2 = y^2 - 2*r*y + r^2 and
//   a*x^2 + b*x + c = a*y^2 + b*y + c - 2*y*(a*r) + a*r^2 - b*r.
// Per key set and step the dealer draws per-channel masks alpha, beta
// (uniform) for the server, which sends the client a^ = a + alpha and
// b^ = b + beta once per session (setup). Per element it splits
// r = u_s + u_c and r^2 = v_s + v_c and gives each party shares of
// w = alpha*u_c, K = -alpha*v_c + beta*u_c and the output mask r_out = m_s + m_c.
// Party p, with (A, B) = (a, b) for the server and (a^, b^) for the client:
//   z_p = A*(v_p - 2*y*u_p) - B*u_p + 2*y*w_p + K_p   [+ a*y^2 + b*y + c: server]
// Since a*u_c = a^*u_c - alpha*u_c and likewise for v_c and b,
// z_s + z_c = a*x^2 + b*x + c exactly, mod 2^64.
//
// Fixed point: x at scale f, a at f, b at 2f, c at 3f, so z is at 3f; each
// party truncates its share by 2f locally (server z_s >> 2f, client
// -((-z_c) >> 2f), arithmetic shifts), adds its share of r_out and sends it:
// y^ = trunc(z) + r_out. trunc(z) is floor(z / 2^2f) or one more (unbiased),
// except with probability about |z| / 2^64 (the client's share wraps), when
// the element is off by about 2^(64-2f). At f = 12 and |values| < 2^7,
// |z| < 2^43: below 2^-21 per element, 2^f times the linear layers' rate
// (below 2^-32: z at 2f there, |z| < 2^31). Any one-round local truncation of a share of z at scale 3f
// has this window (the client's share must be uniform: it is masked by its
// uniform share of K); lowering it takes a smaller coefficient scale (less
// precision) or an exact truncation gate (a DCF, 2 KB of key per element).
//
// Coefficients: quantised as llround(a * 2^f), llround(b * 2^2f),
// llround(c * 2^3f), so the polynomial of a fixed-point input is off by at
// most x^2 * 2^-(f+1) + |x| * 2^-(2f+1) + 2^-(3f+1) before the truncation's
// last place. Each must satisfy |v| < 2^(62-3f) (2^26 at f = 12, 2^14 at
// f = 16), so that each term stays below 2^62 at scale 3f for |x| <= 1; a
// larger or non-finite one is refused, naming the site.
//
// Key of one element for one party (poly_key_bytes() = 40 bytes), read and
// written through the typed view PolyKey in poly.cpp: five little-endian
// words, this party's shares of
//   u = r_in, v = r_in^2, w = alpha*u_c, K = -alpha*v_c + beta*u_c, m = r_out
// (the server's share uniformly random, the client's the value minus it).
// Session words of a step (server key file, global section): alpha[C], beta[C].
// Setup words (server -> client): a^[C], b^[C]. Parameter words as the gate
// reads them (GateData::words): the server's quantised a[C], b[C], c[C]; the
// client's a^[C], b^[C].
#include <cstddef>
#include <cstdint>

#include "mpc/gate.h"

namespace dr::mpc {

size_t poly_key_bytes();

// The largest |coefficient| the gate accepts at f fractional bits: 2^(62-3f).
double poly_coefficient_limit(int frac_bits);

// The gate (gate.h): one round, one word per element each way.
const Gate& poly_gate();

}  // namespace dr::mpc
