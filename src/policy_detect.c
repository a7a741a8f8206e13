/* Content detectors: find sensitive values inside arbitrary text.
 *
 * One left-to-right pass. A hit can only start at a trigger: a digit at the
 * start of a number (card, SSN), an '@' (e-mail, whose local part is found
 * by looking back at most 64 bytes), or a letter at the start of a word
 * (IBAN, JWT, bearer token, API keys). Each detector then looks at a
 * bounded window ahead, so the pass is linear in the input whatever it
 * holds. Hits are reported in order and never overlap: scanning resumes
 * after a hit, and an e-mail's look-back stops at the previous hit. The
 * triggers are found 16 bytes at a time with SSE (pol_detect_run); the
 * byte-at-a-time loop they replace is kept as the reference it is tested
 * against (pol_detect_run_ref). Both run the same per-position checks.
 *
 * What each detector accepts (docs/policy.md "Detectors" has examples):
 *
 *   card     13-19 digits, optionally grouped by single spaces or single
 *            dashes (one kind per number), first digit 2-6 (the issuer
 *            ranges of the card networks: Mastercard 2/5, Amex/Diners/JCB
 *            3, Visa 4, Discover/UnionPay 6), valid Luhn check digit, not
 *            touching another letter or digit. Groups that follow a card
 *            (its expiry date, CVV, another card) do not hide it: the
 *            longest run of whole groups that is a card is taken. Longer
 *            digit runs without separators are not searched for
 *            card-number substrings.
 *   ssn      AAA-GG-SSSS (dashes, or single spaces) where the area is not
 *            000, 666 or 9xx, the group not 00 and the serial not 0000
 *            (SSA rules, also after the 2011 randomisation). Nine digits
 *            without separators are not taken: too many other numbers look
 *            like that.
 *   iban     ISO 13616: country code with a known IBAN length, two check
 *            digits, the BBAN in uppercase letters/digits, compact or in
 *            groups of four separated by single spaces, exact length for
 *            the country, ISO 7064 mod-97 remainder 1.
 *   email    local@domain: local part [A-Za-z0-9._%+-]{1,64} (not starting
 *            or ending with '.'), two or more domain labels of letters,
 *            digits and inner '-', the last one (TLD) two or more letters.
 *   jwt      header.payload.signature (JWS) or five parts (JWE), base64url,
 *            the header decoding to a JSON object with an "alg" member
 *            (the signature may be empty: alg "none").
 *   bearer   "Bearer" (any case), blanks, then an RFC 6750 token68 of at
 *            least 8 characters; the hit is the token, not the scheme. A
 *            token followed by '"' is an auth-param (realm="x"), not a
 *            credential.
 *   api_key  AWS access key ids (AKIA/ASIA + 16 [0-9A-Z]), Stripe secret
 *            and restricted keys (sk_/rk_ + live_/test_ + 10 or more
 *            alphanumerics), GitHub tokens (ghp_/gho_/ghu_/ghs_/ghr_ + 36
 *            or more alphanumerics, github_pat_ + 22 or more), GitLab
 *            personal tokens (glpat- + 20 or more), Slack tokens
 *            (xox[baprs]- + 10 or more), Google API keys (AIza + 35).
 */
#include <errno.h>
#include <string.h>

#include "policy_priv.h"

static inline bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static inline bool is_upper(uint8_t c)
{
	return c >= 'A' && c <= 'Z';
}

static inline bool is_alpha(uint8_t c)
{
	return (uint8_t)((c | 0x20) - 'a') < 26;
}

static inline bool is_alnum(uint8_t c)
{
	return is_digit(c) || is_alpha(c);
}

static inline bool is_b64url(uint8_t c)
{
	return is_alnum(c) || c == '-' || c == '_';
}

/* ---- validators ---------------------------------------------------------- */

bool pol_luhn_ok(const uint8_t *d, size_t n)
{
	unsigned sum = 0;
	bool dbl = false;
	if (n == 0)
		return false;
	for (size_t i = n; i-- > 0;) {
		unsigned v = (unsigned)(d[i] - '0');
		if (v > 9)
			return false;
		if (dbl) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
		dbl = !dbl;
	}
	return sum % 10 == 0;
}

bool pol_ssn_ok(unsigned area, unsigned group, unsigned serial)
{
	/* SSA: area 000, 666 and 900-999 are never issued; group 00 and
	 * serial 0000 neither. */
	if (area == 0 || area == 666 || area >= 900 || area > 999)
		return false;
	return group >= 1 && group <= 99 && serial >= 1 && serial <= 9999;
}

#define CC(a, b) ((((a) - 'A') * 26) + ((b) - 'A'))

/* IBAN lengths by country: SWIFT IBAN Registry (release 94, 2023) plus
 * the later Falkland Islands, Oman and Somalia entries. */
static const uint8_t iban_len[26 * 26] = {
	[CC('A', 'D')] = 24, [CC('A', 'E')] = 23, [CC('A', 'L')] = 28,
	[CC('A', 'T')] = 20, [CC('A', 'Z')] = 28, [CC('B', 'A')] = 20,
	[CC('B', 'E')] = 16, [CC('B', 'G')] = 22, [CC('B', 'H')] = 22,
	[CC('B', 'I')] = 27, [CC('B', 'R')] = 29, [CC('B', 'Y')] = 28,
	[CC('C', 'H')] = 21, [CC('C', 'R')] = 22, [CC('C', 'Y')] = 28,
	[CC('C', 'Z')] = 24, [CC('D', 'E')] = 22, [CC('D', 'J')] = 27,
	[CC('D', 'K')] = 18, [CC('D', 'O')] = 28, [CC('E', 'E')] = 20,
	[CC('E', 'G')] = 29, [CC('E', 'S')] = 24, [CC('F', 'I')] = 18,
	[CC('F', 'K')] = 18, [CC('F', 'O')] = 18, [CC('F', 'R')] = 27,
	[CC('G', 'B')] = 22, [CC('G', 'E')] = 22, [CC('G', 'I')] = 23,
	[CC('G', 'L')] = 18, [CC('G', 'R')] = 27, [CC('G', 'T')] = 28,
	[CC('H', 'R')] = 21, [CC('H', 'U')] = 28, [CC('I', 'E')] = 22,
	[CC('I', 'L')] = 23, [CC('I', 'Q')] = 23, [CC('I', 'S')] = 26,
	[CC('I', 'T')] = 27, [CC('J', 'O')] = 30, [CC('K', 'W')] = 30,
	[CC('K', 'Z')] = 20, [CC('L', 'B')] = 28, [CC('L', 'C')] = 32,
	[CC('L', 'I')] = 21, [CC('L', 'T')] = 20, [CC('L', 'U')] = 20,
	[CC('L', 'V')] = 21, [CC('L', 'Y')] = 25, [CC('M', 'C')] = 27,
	[CC('M', 'D')] = 24, [CC('M', 'E')] = 22, [CC('M', 'K')] = 19,
	[CC('M', 'N')] = 20, [CC('M', 'R')] = 27, [CC('M', 'T')] = 31,
	[CC('M', 'U')] = 30, [CC('N', 'I')] = 28, [CC('N', 'L')] = 18,
	[CC('N', 'O')] = 15, [CC('O', 'M')] = 23, [CC('P', 'K')] = 24,
	[CC('P', 'L')] = 28, [CC('P', 'S')] = 29, [CC('P', 'T')] = 25,
	[CC('Q', 'A')] = 29, [CC('R', 'O')] = 24, [CC('R', 'S')] = 22,
	[CC('R', 'U')] = 33, [CC('S', 'A')] = 24, [CC('S', 'C')] = 31,
	[CC('S', 'D')] = 18, [CC('S', 'E')] = 24, [CC('S', 'I')] = 19,
	[CC('S', 'K')] = 24, [CC('S', 'M')] = 27, [CC('S', 'O')] = 23,
	[CC('S', 'T')] = 25, [CC('S', 'V')] = 28, [CC('T', 'L')] = 23,
	[CC('T', 'N')] = 24, [CC('T', 'R')] = 26, [CC('U', 'A')] = 29,
	[CC('V', 'A')] = 22, [CC('V', 'G')] = 24, [CC('X', 'K')] = 20,
};

#define IBAN_MAX 34

unsigned pol_iban_length(const uint8_t *cc)
{
	if (!is_upper(cc[0]) || !is_upper(cc[1]))
		return 0;
	return iban_len[CC(cc[0], cc[1])];
}

bool pol_iban_ok(const uint8_t *s, size_t n)
{
	if (n < 5 || n > IBAN_MAX || pol_iban_length(s) != n ||
	    !is_digit(s[2]) || !is_digit(s[3]))
		return false;
	/* ISO 7064 MOD 97-10: the first four characters moved to the end,
	 * letters as 10..35, the number mod 97 must be 1. Done digit by digit
	 * so nothing overflows. */
	unsigned r = 0;
	for (size_t k = 0; k < n; k++) {
		uint8_t c = s[(k + 4) % n];
		if (is_digit(c))
			r = (r * 10 + (unsigned)(c - '0')) % 97;
		else if (is_upper(c))
			r = (r * 100 + (unsigned)(c - 'A' + 10)) % 97;
		else
			return false;
	}
	return r == 1;
}

/* ---- detectors ------------------------------------------------------------- */

static bool card_digits_ok(const uint8_t *d, size_t nd)
{
	return nd >= 13 && d[0] >= '2' && d[0] <= '6' && pol_luhn_ok(d, nd);
}

/* Whether the first |ng| groups ending at the digit counts |gnd| are
 * laid out as a card is written: one group of 13-19 digits, 4-4-4-4,
 * 4-4-4-4-3, or 4-6-5 / 4-6-4 (Amex, Diners). */
static bool card_layout(const uint8_t *gnd, unsigned ng)
{
	uint8_t sz[5];
	if (ng == 1)
		return gnd[0] >= 13;
	if (ng > 5)
		return false;
	for (unsigned k = 0; k < ng; k++)
		sz[k] = (uint8_t)(gnd[k] - (k ? gnd[k - 1] : 0));
	if (ng == 3)
		return sz[0] == 4 && sz[1] == 6 && (sz[2] == 5 || sz[2] == 4);
	for (unsigned k = 0; k < 4 && k < ng; k++)
		if (sz[k] != 4)
			return false;
	return ng == 4 || sz[4] == 3;
}

/* A card number starting at |i| (a digit not preceded by a letter or
 * digit). Returns its length or 0. Looks at most 38 bytes ahead.
 *
 * A separator joins the digits after it to the number, so a card
 * followed by its expiry date, its CVV or another card ("4539...6467
 * 12/26", "...6467-12-26") reads as one run that is too long or fails
 * the check digit. Then, when |i| starts the run (no digit and separator
 * before it) and its first groups are laid out as a card is written, the
 * longest such prefix that is a card is taken: the card, not the run.
 * (The caller tries again after each separator, which finds a second
 * card.) Lists of small numbers (tables, phone numbers, dates) are not
 * searched for cards that way. A run of digits without separators longer
 * than 19 is not searched. */
static size_t card_at(const uint8_t *t, size_t n, size_t i)
{
	uint8_t d[19];
	size_t nd = 0, j = i;
	uint8_t sep = 0;
	size_t gend[sizeof(d)]; /* where each group before a separator ends */
	uint8_t gnd[sizeof(d)]; /* and how many digits the run had there */
	unsigned ng = 0;
	bool over = false;
	while (j < n) {
		uint8_t c = t[j];
		if (is_digit(c)) {
			if (nd == sizeof(d)) {
				over = true; /* a longer number, not a card */
				break;
			}
			d[nd++] = c;
			j++;
		} else if ((c == ' ' || c == '-') && (sep == 0 || sep == c) &&
			   j + 1 < n && is_digit(t[j + 1])) {
			gend[ng] = j;
			gnd[ng++] = (uint8_t)nd;
			sep = c;
			j++;
		} else {
			break;
		}
	}
	if (!over && !(j < n && is_alpha(t[j])) && card_digits_ok(d, nd))
		return j - i;
	/* inside a run (digits and a separator before |i|): a card there
	 * is one group of 13-19 digits, or begins with a group of 4 after a
	 * group that is not (a time, an id, a quantity before the card; not
	 * the next group of a list of 4-digit numbers) */
	size_t prev = 0;
	if (i >= 2 && (t[i - 1] == ' ' || t[i - 1] == '-'))
		while (prev < i - 1 && is_digit(t[i - 2 - prev]))
			prev++;
	while (ng--) {
		if (!card_layout(gnd, ng + 1) || !card_digits_ok(d, gnd[ng]))
			continue;
		if (prev && ng && (prev == 4 || gnd[0] != 4))
			continue;
		/* a 4-digit group after it is an expiry (MMYY), not the
		 * next of a list of years */
		size_t at = gend[ng] + 1, e = at;
		while (e < n && e - at < 5 && is_digit(t[e]))
			e++;
		if (e - at == 4 && !((t[at] == '0' && t[at + 1] >= '1') ||
				     (t[at] == '1' && t[at + 1] <= '2')))
			continue;
		return gend[ng] - i;
	}
	return 0;
}

static unsigned num_at(const uint8_t *t, size_t k, size_t n)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(t[k + i]))
			return 100000;
		v = v * 10 + (unsigned)(t[k + i] - '0');
	}
	return v;
}

/* AAA-GG-SSSS at |i|; 11 or 0. */
static size_t ssn_at(const uint8_t *t, size_t n, size_t i)
{
	if (n - i < 11)
		return 0;
	uint8_t sep = t[i + 3];
	if ((sep != '-' && sep != ' ') || t[i + 6] != sep)
		return 0;
	unsigned a = num_at(t, i, 3), g = num_at(t, i + 4, 2),
		 s = num_at(t, i + 7, 4);
	if (a > 999 || g > 99 || s > 9999)
		return 0;
	/* Part of a longer dashed number (123-45-6789-0, 9-123-45-6789)? */
	size_t e = i + 11;
	if (e < n && (is_alnum(t[e]) ||
		      ((t[e] == '-' || t[e] == sep) && e + 1 < n &&
		       is_digit(t[e + 1]))))
		return 0;
	if (i >= 2 && (t[i - 1] == '-' || t[i - 1] == sep) &&
	    is_digit(t[i - 2]))
		return 0;
	return pol_ssn_ok(a, g, s) ? 11 : 0;
}

/* IBAN at |i| (uppercase letter at a word start). */
static size_t iban_at(const uint8_t *t, size_t n, size_t i)
{
	if (n - i < 15 || !is_upper(t[i + 1]))
		return 0;
	unsigned len = iban_len[CC(t[i], t[i + 1])];
	if (!len || !is_digit(t[i + 2]) || !is_digit(t[i + 3]))
		return 0;
	uint8_t c[IBAN_MAX];
	size_t j = i;
	unsigned k = 0;
	int spaced = -1; /* decided at the first group boundary */
	while (k < len) {
		if (k && k % 4 == 0) {
			int sp = j < n && t[j] == ' ';
			if (spaced < 0)
				spaced = sp;
			else if (sp != spaced)
				return 0;
			j += (size_t)sp;
		}
		if (j >= n || !(is_upper(t[j]) || is_digit(t[j])))
			return 0;
		c[k++] = t[j++];
	}
	if (j < n && is_alnum(t[j]))
		return 0;
	return pol_iban_ok(c, len) ? j - i : 0;
}

static inline bool is_local(uint8_t c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' ||
	       c == '-';
}

/* E-mail around the '@' at |a|; the local part starts at |floor| or
 * later. Returns the length and its start in *|start|, or 0. */
static size_t email_at(const uint8_t *t, size_t n, size_t a, size_t floor,
		       size_t *start)
{
	size_t s = a;
	while (s > floor && is_local(t[s - 1])) {
		if (a - s == 64)
			return 0; /* local part over 64 (RFC 5321 §4.5.3.1.1) */
		s--;
	}
	while (s < a && t[s] == '.')
		s++;
	if (s == a || t[a - 1] == '.')
		return 0;
	size_t j = a + 1, best = 0;
	unsigned labels = 0;
	while (j < n && j - a <= 253) {
		size_t ls = j;
		bool alpha = true;
		while (j < n && j - ls < 63 && (is_alnum(t[j]) || t[j] == '-')) {
			alpha = alpha && is_alpha(t[j]);
			j++;
		}
		if (j == ls || t[ls] == '-' || t[j - 1] == '-')
			break;
		labels++;
		if (labels >= 2 && alpha && j - ls >= 2)
			best = j;
		if (j + 1 < n && t[j] == '.' && is_alnum(t[j + 1])) {
			j++;
			continue;
		}
		break;
	}
	if (!best)
		return 0;
	*start = s;
	return best - s;
}

static int b64url_val(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Unpadded base64url; -1 if malformed or over |cap|. */
static long b64url_decode(const uint8_t *s, size_t n, uint8_t *out,
			  size_t cap)
{
	if (n % 4 == 1 || (n / 4) * 3 + 2 > cap)
		return -1;
	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_val(s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	return (long)o;
}

static size_t b64url_run(const uint8_t *t, size_t n, size_t j)
{
	while (j < n && is_b64url(t[j]))
		j++;
	return j;
}

/* JWT at |i| ('e' not preceded by a base64url character). */
static size_t jwt_at(const uint8_t *t, size_t n, size_t i)
{
	/* A JSON object's '{' is base64 "e", followed by "y" for '"' or ' '
	 * and "w" for '\t', '\n', '\r'. */
	if (i + 1 >= n || (t[i + 1] != 'y' && t[i + 1] != 'w'))
		return 0;
	size_t h_end = b64url_run(t, n, i);
	if (h_end >= n || t[h_end] != '.')
		return 0;
	size_t p_end = b64url_run(t, n, h_end + 1);
	if (p_end == h_end + 1 || p_end >= n || t[p_end] != '.')
		return 0;
	size_t end = b64url_run(t, n, p_end + 1); /* signature, may be empty */
	if (end < n && t[end] == '.') {
		/* JWE compact form: two more parts. */
		size_t k = b64url_run(t, n, end + 1);
		if (k < n && t[k] == '.') {
			size_t k2 = b64url_run(t, n, k + 1);
			if (k2 > k + 1)
				end = k2;
		}
	}
	uint8_t hdr[1024];
	long hl = b64url_decode(t + i, h_end - i, hdr, sizeof(hdr));
	if (hl < 2 || !pol_json_object_has_key(hdr, (size_t)hl, "alg"))
		return 0;
	return end - i;
}

static inline bool is_token68(uint8_t c)
{
	return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
	       c == '+' || c == '/';
}

/* "Bearer <token68>" at |i|; the hit is the token. */
static size_t bearer_at(const uint8_t *t, size_t n, size_t i, size_t *start)
{
	static const char kw[] = "bearer";
	if (n - i < 8)
		return 0;
	for (size_t k = 0; k < 6; k++)
		if ((t[i + k] | 0x20) != (uint8_t)kw[k])
			return 0;
	size_t j = i + 6;
	if (t[j] != ' ' && t[j] != '\t')
		return 0;
	while (j < n && (t[j] == ' ' || t[j] == '\t'))
		j++;
	size_t s = j;
	while (j < n && is_token68(t[j]))
		j++;
	size_t tok = j - s;
	while (j < n && t[j] == '=')
		j++;
	if (tok < 8 || (j < n && (t[j] == '"' || is_alnum(t[j]))))
		return 0;
	*start = s;
	return j - s;
}

enum { CL_UPNUM, CL_ALNUM, CL_ALNUM_U, CL_ALNUM_UD };

static bool in_class(uint8_t c, int cl)
{
	switch (cl) {
	case CL_UPNUM: return is_upper(c) || is_digit(c);
	case CL_ALNUM: return is_alnum(c);
	case CL_ALNUM_U: return is_alnum(c) || c == '_';
	default: return is_alnum(c) || c == '_' || c == '-';
	}
}

/* |plen| bytes of |prefix| at |i|, then at least |min| (and, if |exact|,
 * exactly |min|) characters of class |cl|, then no letter or digit. */
static size_t shape(const uint8_t *t, size_t n, size_t i, const char *prefix,
		    size_t plen, int cl, size_t min, bool exact)
{
	if (n - i < plen + min || memcmp(t + i, prefix, plen) != 0)
		return 0;
	size_t j = i + plen;
	while (j < n && in_class(t[j], cl))
		j++;
	size_t body = j - i - plen;
	if (body < min || (exact && body != min) || (j < n && is_alnum(t[j])))
		return 0;
	return j - i;
}

/* Key shapes by first character: prefix, class of the rest, minimum
 * length of the rest, and whether that length is exact. */
static const struct key_shape {
	const char *prefix;
	uint8_t plen, cl, min;
	bool exact;
} key_shapes[] = {
#define K(p, cl, min, exact) { p, sizeof(p) - 1, cl, min, exact }
	K("AKIA", CL_UPNUM, 16, true),	   /* AWS access key id */
	K("ASIA", CL_UPNUM, 16, true),	   /* AWS temporary key id */
	K("AIza", CL_ALNUM_UD, 35, true),  /* Google API key */
	K("sk_live_", CL_ALNUM, 10, false), /* Stripe secret key */
	K("sk_test_", CL_ALNUM, 10, false),
	K("rk_live_", CL_ALNUM, 10, false), /* Stripe restricted key */
	K("rk_test_", CL_ALNUM, 10, false),
	K("ghp_", CL_ALNUM, 36, false), /* GitHub personal access token */
	K("gho_", CL_ALNUM, 36, false), /* GitHub OAuth token */
	K("ghu_", CL_ALNUM, 36, false), /* GitHub user-to-server token */
	K("ghs_", CL_ALNUM, 36, false), /* GitHub server-to-server token */
	K("ghr_", CL_ALNUM, 36, false), /* GitHub refresh token */
	K("github_pat_", CL_ALNUM_U, 22, false), /* GitHub fine-grained */
	K("glpat-", CL_ALNUM_UD, 20, false),     /* GitLab personal token */
#undef K
};

static size_t apikey_at(const uint8_t *t, size_t n, size_t i)
{
	/* Most words start with none of the shapes' first letters. */
	if (t[i] != 'A' && t[i] != 's' && t[i] != 'r' && t[i] != 'g' &&
	    t[i] != 'x')
		return 0;
	for (size_t k = 0; k < sizeof(key_shapes) / sizeof(*key_shapes);
	     k++) {
		const struct key_shape *ks = &key_shapes[k];
		if ((uint8_t)ks->prefix[0] != t[i])
			continue;
		size_t l = shape(t, n, i, ks->prefix, ks->plen, ks->cl,
				 ks->min, ks->exact);
		if (l)
			return l;
	}
	/* Slack: xoxb-, xoxa-, xoxp-, xoxr-, xoxs- */
	if (t[i] == 'x' && n - i > 5 && t[i + 1] == 'o' && t[i + 2] == 'x' &&
	    t[i + 3] && strchr("baprs", t[i + 3]) && t[i + 4] == '-') {
		size_t j = i + 5;
		while (j < n && (is_alnum(t[j]) || t[j] == '-'))
			j++;
		if (j - i - 5 >= 10)
			return j - i;
	}
	return 0;
}

/* ---- the scan -------------------------------------------------------------- */

/* What the scan finds at |i|: a hit that starts at |i| (or, for an '@',
 * around it, its local part not reaching below |floor|). Returns its length
 * (0: none) and sets *|start| and *|det|. Both scanners below call it; they
 * differ only in which positions they call it at.
 *
 * It returns a hit only at an '@' followed by a letter or digit (the first
 * domain label), or at a word start (|i| is 0 or t[i-1] is not a letter or
 * digit) whose first three bytes are what the detector needs: see the T_*
 * classes below, which the fast scan relies on. A change to a detector's
 * first bytes must change them too (the tests compare the two scans on
 * every value of those bytes). */
static size_t hit_at(const uint8_t *t, size_t n, size_t i, size_t floor,
		     unsigned mask, size_t *start, unsigned *det)
{
	uint8_t c = t[i];
	size_t len = 0;
	bool word = i == 0 || !is_alnum(t[i - 1]);
	*start = i;
	*det = 0;
	if (is_digit(c)) {
		if (word) {
			if ((mask & (1u << POLICY_DET_SSN)) &&
			    (len = ssn_at(t, n, i)))
				*det = POLICY_DET_SSN;
			else if ((mask & (1u << POLICY_DET_CARD)) &&
				 (len = card_at(t, n, i)))
				*det = POLICY_DET_CARD;
		}
	} else if (c == '@') {
		if (mask & (1u << POLICY_DET_EMAIL)) {
			len = email_at(t, n, i, floor, start);
			*det = POLICY_DET_EMAIL;
		}
	} else if (word && is_alpha(c)) {
		if ((mask & (1u << POLICY_DET_BEARER)) && (c | 0x20) == 'b' &&
		    (len = bearer_at(t, n, i, start)))
			*det = POLICY_DET_BEARER;
		else if ((mask & (1u << POLICY_DET_JWT)) && c == 'e' &&
			 (i == 0 || !is_b64url(t[i - 1])) &&
			 (len = jwt_at(t, n, i)))
			*det = POLICY_DET_JWT;
		else if ((mask & (1u << POLICY_DET_API_KEY)) &&
			 (len = apikey_at(t, n, i)))
			*det = POLICY_DET_API_KEY;
		else if ((mask & (1u << POLICY_DET_IBAN)) && is_upper(c) &&
			 (len = iban_at(t, n, i)))
			*det = POLICY_DET_IBAN;
	}
	return len;
}

/* The reference scan, one byte at a time: after a hit it resumes at the
 * hit's end (which is also the floor of the next e-mail's local part);
 * after a letter or digit that starts nothing it skips the rest of the
 * word, since no hit starts inside a word. The fast scan below must emit
 * exactly what this one does (tests/unit/test_policy_detect.c and
 * tests/fuzz/fuzz_detect.c compare them). */
void pol_detect_run_ref(const uint8_t *t, size_t n, unsigned mask,
			pol_emit_fn emit, void *ctx)
{
	size_t i = 0, floor = 0;
	mask &= POLICY_DET_ALL;
	if (!mask)
		return;
	while (i < n) {
		size_t start;
		unsigned det;
		size_t len = hit_at(t, n, i, floor, mask, &start, &det);
		if (len) {
			if (!emit(ctx, (uint32_t)start, (uint32_t)len, det))
				return;
			i = floor = start + len;
		} else if (is_alnum(t[i])) {
			i++;
			while (i < n && is_alnum(t[i]))
				i++;
		} else {
			i++;
		}
	}
}

#ifdef __SSSE3__
#include <tmmintrin.h>

/* The fast scan. The reference spends about 16 cycles a byte, most of
 * them in mispredicted branches: every byte is a digit, a letter or
 * neither, at a word start or not. Yet hit_at() can only return a hit at
 * the few positions listed above it. In 16 bytes at a time this scan
 * computes which positions are such candidates, as a bitmask, and calls
 * hit_at() only there, in order; after a hit it restarts at the hit's end
 * like the reference. Calling hit_at() at more positions than needed
 * changes nothing (it finds no hit where the reference finds none:
 * hit_at() decides alone, from the bytes, |floor| and |mask|); the test
 * only has to let through every position where a hit is possible.
 *
 * A candidate is a word start whose first three bytes fit one of the
 * trigger classes below, or an '@' followed by a letter or digit. Three
 * bytes rather than one or two, because two are not selective enough:
 * [A-Z][A-Z] starts 1 position in 80 of random bytes and "be" a lot of
 * English words; with the third byte about 1 position in 600 of random
 * bytes is a candidate (mostly '@'), 1 in 200 of English text (numbers of
 * three digits or more).
 *
 * Byte classes come from two 16-entry tables indexed by the low and the
 * high nibble (pshufb): c is in class k when bit k is set in both
 * lo[c & 15] and hi[c >> 4]. Bytes 0x80-0xff have high nibbles 8-15, all
 * zero in the hi tables: in no class; so is 0x00. A class so built is a
 * product of a set of high and a set of low nibbles; where the wanted set
 * is not one (A-Z), the class is a superset (0x40-0x5f), which only costs
 * a few more calls. */

/* Trigger classes: first byte, second byte, third byte. */
#define T_NUM 0x01   /* [0-9] [0-9 -] [0-9 -]: ssn, card */
#define T_IBAN 0x02  /* [A-Z] [A-Z] [0-9] */
#define T_BEAR 0x04  /* [Bb] [Ee] [Aa] */
#define T_JWT 0x08   /* e [yw] base64url ('{' is "ey" or "ew") */
#define T_KEY_A 0x10 /* A [IKS] [Iz]: AKIA, ASIA, AIza */
#define T_KEY_K 0x20 /* [rs] k _: sk_, rk_ */
#define T_KEY_G 0x40 /* g [hil] [aoprstu]: gh?_, github_pat_, glpat- */
#define T_KEY_X 0x80 /* x o x: xox?- */

static const uint8_t first_hi[16] = {
	[0x3] = T_NUM,
	[0x4] = T_IBAN | T_BEAR | T_KEY_A, /* 0x40-0x4f */
	[0x5] = T_IBAN,
	[0x6] = T_BEAR | T_JWT | T_KEY_G,
	[0x7] = T_KEY_K | T_KEY_X,
};
static const uint8_t first_lo[16] = {
	[0x0] = T_NUM | T_IBAN,
	[0x1] = T_NUM | T_IBAN | T_KEY_A,	  /* A */
	[0x2] = T_NUM | T_IBAN | T_BEAR | T_KEY_K, /* B b r */
	[0x3] = T_NUM | T_IBAN | T_KEY_K,	  /* s */
	[0x4] = T_NUM | T_IBAN,
	[0x5] = T_NUM | T_IBAN | T_JWT, /* e */
	[0x6] = T_NUM | T_IBAN,
	[0x7] = T_NUM | T_IBAN | T_KEY_G, /* g */
	[0x8] = T_NUM | T_IBAN | T_KEY_X, /* x */
	[0x9] = T_NUM | T_IBAN,
	[0xa ... 0xf] = T_IBAN,
};

static const uint8_t second_hi[16] = {
	[0x2] = T_NUM,
	[0x3] = T_NUM,
	[0x4] = T_IBAN | T_BEAR | T_KEY_A,
	[0x5] = T_IBAN | T_KEY_A,
	[0x6] = T_BEAR | T_KEY_K | T_KEY_G | T_KEY_X,
	[0x7] = T_JWT,
};
static const uint8_t second_lo[16] = {
	[0x0] = T_NUM | T_IBAN, /* ' ' */
	[0x1] = T_NUM | T_IBAN,
	[0x2] = T_NUM | T_IBAN,
	[0x3] = T_NUM | T_IBAN | T_KEY_A, /* S */
	[0x4] = T_NUM | T_IBAN,
	[0x5] = T_NUM | T_IBAN | T_BEAR, /* E e */
	[0x6] = T_NUM | T_IBAN,
	[0x7] = T_NUM | T_IBAN | T_JWT,			    /* w */
	[0x8] = T_NUM | T_IBAN | T_KEY_G,		    /* h */
	[0x9] = T_NUM | T_IBAN | T_JWT | T_KEY_A | T_KEY_G, /* y I i */
	[0xa] = T_IBAN,
	[0xb] = T_IBAN | T_KEY_A | T_KEY_K, /* K k */
	[0xc] = T_IBAN | T_KEY_G,	    /* l */
	[0xd] = T_IBAN | T_NUM,		    /* - */
	[0xe] = T_IBAN,
	[0xf] = T_IBAN | T_KEY_X, /* o */
};

static const uint8_t third_hi[16] = {
	[0x2] = T_NUM | T_JWT,
	[0x3] = T_NUM | T_IBAN | T_JWT,
	[0x4] = T_BEAR | T_JWT | T_KEY_A,
	[0x5] = T_JWT | T_KEY_K,
	[0x6] = T_BEAR | T_JWT | T_KEY_G,
	[0x7] = T_JWT | T_KEY_A | T_KEY_G | T_KEY_X,
};
static const uint8_t third_lo[16] = {
	[0x0] = T_JWT | T_NUM | T_IBAN | T_KEY_G, /* ' ' p */
	[0x1] = T_JWT | T_NUM | T_IBAN | T_BEAR | T_KEY_G, /* A a */
	[0x2] = T_JWT | T_NUM | T_IBAN | T_KEY_G, /* r */
	[0x3] = T_JWT | T_NUM | T_IBAN | T_KEY_G, /* s */
	[0x4] = T_JWT | T_NUM | T_IBAN | T_KEY_G, /* t */
	[0x5] = T_JWT | T_NUM | T_IBAN | T_KEY_G, /* u */
	[0x6] = T_JWT | T_NUM | T_IBAN,
	[0x7] = T_JWT | T_NUM | T_IBAN,
	[0x8] = T_JWT | T_NUM | T_IBAN | T_KEY_X, /* x */
	[0x9] = T_JWT | T_NUM | T_IBAN | T_KEY_A, /* I */
	[0xa] = T_JWT | T_KEY_A,		  /* z */
	[0xb] = T_JWT,
	[0xc] = T_JWT,
	[0xd] = T_JWT | T_NUM,		  /* - */
	[0xe] = T_JWT,
	[0xf] = T_JWT | T_KEY_K | T_KEY_G, /* _ o */
};

/* Letters and digits, exactly: 0-9, A-O a-o, P-Z p-z. A byte wrongly
 * taken for one would hide the word start after it, one wrongly taken for
 * something else the e-mail before it. */
#define A_DIG 0x01
#define A_AO 0x02
#define A_PZ 0x04
static const uint8_t alnum_hi[16] = {
	[0x3] = A_DIG, [0x4] = A_AO, [0x5] = A_PZ, [0x6] = A_AO, [0x7] = A_PZ,
};
static const uint8_t alnum_lo[16] = {
	[0x0] = A_DIG | A_PZ,
	[0x1 ... 0x9] = A_DIG | A_AO | A_PZ,
	[0xa] = A_AO | A_PZ,
	[0xb ... 0xf] = A_AO,
};

/* 16 bytes of input, classified. */
struct blk {
	__m128i raw;
	__m128i first, second, third; /* T_* classes in each role */
	__m128i word; /* 0xff where the byte is not a letter or digit */
};

static inline __m128i lookup(const uint8_t *lo_tbl, const uint8_t *hi_tbl,
			     __m128i lo, __m128i hi)
{
	return _mm_and_si128(
		_mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)lo_tbl), lo),
		_mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)hi_tbl), hi));
}

static inline struct blk classify(__m128i v)
{
	__m128i nib = _mm_set1_epi8(0x0f);
	__m128i lo = _mm_and_si128(v, nib);
	__m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), nib);
	return (struct blk){
		.raw = v,
		.first = lookup(first_lo, first_hi, lo, hi),
		.second = lookup(second_lo, second_hi, lo, hi),
		.third = lookup(third_lo, third_hi, lo, hi),
		.word = _mm_cmpeq_epi8(lookup(alnum_lo, alnum_hi, lo, hi),
				       _mm_setzero_si128()),
	};
}

/* t[pos .. pos+16), zeros past |n|: a zero byte is in no class, so past
 * the end nothing is a candidate and nothing is read. */
static inline __m128i window(const uint8_t *t, size_t n, size_t pos)
{
	if (pos + 16 <= n)
		return _mm_loadu_si128((const __m128i *)(t + pos));
	uint8_t b[16] = { 0 };
	if (pos < n)
		memcpy(b, t + pos, n - pos);
	return _mm_loadu_si128((const __m128i *)b);
}

/* Bit k set: position k of |cur| is a candidate. |prev_word| has the
 * byte before |cur| in its last lane, |nx| is the 16 bytes after it;
 * |trig| holds the T_* classes of the detectors on, |email| 0xff if it
 * is on. */
static inline unsigned candidates(__m128i prev_word, const struct blk *cur,
				  const struct blk *nx, __m128i trig,
				  __m128i email)
{
	__m128i at_start = _mm_alignr_epi8(cur->word, prev_word, 15);
	__m128i second = _mm_alignr_epi8(nx->second, cur->second, 1);
	__m128i third = _mm_alignr_epi8(nx->third, cur->third, 2);
	__m128i cls = _mm_and_si128(_mm_and_si128(cur->first, second),
				    _mm_and_si128(third, trig));
	__m128i c = _mm_andnot_si128(
		_mm_cmpeq_epi8(cls, _mm_setzero_si128()), at_start);
	__m128i at = _mm_cmpeq_epi8(cur->raw, _mm_set1_epi8('@'));
	__m128i next_word = _mm_alignr_epi8(nx->word, cur->word, 1);
	at = _mm_and_si128(_mm_andnot_si128(next_word, at), email);
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(c, at));
}

static unsigned trigger_classes(unsigned mask)
{
	unsigned t = 0;
	if (mask & ((1u << POLICY_DET_SSN) | (1u << POLICY_DET_CARD)))
		t |= T_NUM;
	if (mask & (1u << POLICY_DET_IBAN))
		t |= T_IBAN;
	if (mask & (1u << POLICY_DET_BEARER))
		t |= T_BEAR;
	if (mask & (1u << POLICY_DET_JWT))
		t |= T_JWT;
	if (mask & (1u << POLICY_DET_API_KEY))
		t |= T_KEY_A | T_KEY_K | T_KEY_G | T_KEY_X;
	return t;
}

/* The first hit at |pos| or after, as the reference finds it when it
 * resumes at |pos| (the end of the previous hit, so also the e-mail floor);
 * 0 if there is none. Each block of 16 is classified once; the block after
 * it is read ahead for the second and third bytes of its last positions. */
static size_t next_hit(const uint8_t *t, size_t n, size_t pos, unsigned mask,
		       size_t *start, unsigned *det)
{
	size_t floor = pos;
	__m128i trig = _mm_set1_epi8((char)trigger_classes(mask));
	__m128i email = _mm_set1_epi8(mask & (1u << POLICY_DET_EMAIL) ? -1 : 0);
	__m128i prev_word = _mm_set1_epi8(pos && is_alnum(t[pos - 1]) ? 0 : -1);
	struct blk cur = classify(window(t, n, pos));
	for (; pos < n; pos += 16) {
		struct blk nx = classify(window(t, n, pos + 16));
		unsigned m = candidates(prev_word, &cur, &nx, trig, email);
		while (m) {
			size_t i = pos + (size_t)__builtin_ctz(m);
			size_t len = hit_at(t, n, i, floor, mask, start, det);
			if (len)
				return len;
			m &= m - 1;
		}
		prev_word = cur.word;
		cur = nx;
	}
	return 0;
}

void pol_detect_run(const uint8_t *t, size_t n, unsigned mask,
		    pol_emit_fn emit, void *ctx)
{
	size_t pos = 0, start, len;
	unsigned det;
	mask &= POLICY_DET_ALL;
	if (!mask)
		return;
	while ((len = next_hit(t, n, pos, mask, &start, &det))) {
		if (!emit(ctx, (uint32_t)start, (uint32_t)len, det))
			return;
		pos = start + len;
	}
}
#else
void pol_detect_run(const uint8_t *t, size_t n, unsigned mask,
		    pol_emit_fn emit, void *ctx)
{
	pol_detect_run_ref(t, n, mask, emit, ctx);
}
#endif

/* ---- public --------------------------------------------------------------- */

static const char *const det_names[POLICY_DET_COUNT] = {
	[POLICY_DET_CARD] = "card",     [POLICY_DET_EMAIL] = "email",
	[POLICY_DET_SSN] = "ssn",       [POLICY_DET_IBAN] = "iban",
	[POLICY_DET_JWT] = "jwt",       [POLICY_DET_BEARER] = "bearer",
	[POLICY_DET_API_KEY] = "api_key",
};

const char *policy_detector_name(enum policy_detector d)
{
	return (unsigned)d < POLICY_DET_COUNT ? det_names[d] : "?";
}

struct collect {
	struct policy_span *spans;
	unsigned n, max;
};

static bool collect_emit(void *ctx, uint32_t off, uint32_t len, unsigned det)
{
	struct collect *c = ctx;
	if (c->n == c->max)
		return false;
	c->spans[c->n++] = (struct policy_span){
		.off = off, .len = len, .kind = POLICY_KIND_DETECTOR,
		.detector = (uint8_t)det, .action = POLICY_ACTION_NONE,
	};
	return true;
}

int policy_detect(unsigned mask, const void *text, size_t len,
		  struct policy_span *spans, unsigned max)
{
	if ((!text && len) || !spans || max == 0 || len > UINT32_MAX)
		return -EINVAL;
	struct collect c = { .spans = spans, .max = max };
	pol_detect_run(text, len, mask, collect_emit, &c);
	return (int)c.n;
}
