/* Tests for src/policy_detect.c: the content detectors, one table per
 * detector with valid and invalid examples, hits inside larger strings,
 * the validators (Luhn, SSN ranges, IBAN lengths and mod-97), inputs
 * built to make a careless scanner slow or walk off the end, and the SSE
 * scan (pol_detect_run) against the byte-at-a-time reference
 * (pol_detect_run_ref) on random bytes, planted values at every offset and
 * buffer end, every detector mask, and every value of the bytes its
 * candidate test looks at. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/policy_priv.h"

#define CARD (1u << POLICY_DET_CARD)
#define EMAIL (1u << POLICY_DET_EMAIL)
#define SSN (1u << POLICY_DET_SSN)
#define IBAN (1u << POLICY_DET_IBAN)
#define JWT (1u << POLICY_DET_JWT)
#define BEARER (1u << POLICY_DET_BEARER)
#define KEY (1u << POLICY_DET_API_KEY)
#define ALL POLICY_DET_ALL

/* ---- validators --------------------------------------------------------- */

static void test_luhn(void **state)
{
	(void)state;
	static const struct {
		const char *d;
		bool ok;
	} t[] = {
		{ "4111111111111111", true },  { "4111111111111112", false },
		{ "5500000000000004", true },  { "5500000000000005", false },
		{ "378282246310005", true },   { "6011111111111117", true },
		{ "79927398713", true },       { "79927398710", false },
		{ "0", true },                 { "", false },
		{ "12a4", false },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++)
		assert_int_equal(pol_luhn_ok((const uint8_t *)t[i].d,
					     strlen(t[i].d)),
				 t[i].ok);
}

static void test_ssn_ranges(void **state)
{
	(void)state;
	static const struct {
		unsigned a, g, s;
		bool ok;
	} t[] = {
		{ 123, 45, 6789, true }, { 1, 1, 1, true },
		{ 899, 99, 9999, true }, { 665, 1, 1, true },
		{ 667, 1, 1, true },     { 0, 45, 6789, false },
		{ 666, 45, 6789, false }, { 900, 45, 6789, false },
		{ 999, 45, 6789, false }, { 123, 0, 6789, false },
		{ 123, 45, 0, false },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++)
		assert_int_equal(pol_ssn_ok(t[i].a, t[i].g, t[i].s), t[i].ok);
}

static void test_iban_validator(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		bool ok;
	} t[] = {
		{ "DE89370400440532013000", true },
		{ "GB82WEST12345698765432", true },
		{ "FR1420041010050500013M02606", true },
		{ "NL91ABNA0417164300", true },
		{ "BE68539007547034", true },
		{ "CH9300762011623852957", true },
		{ "NO9386011117947", true },
		{ "ES9121000418450200051332", true },
		{ "IT60X0542811101000000123456", true },
		{ "PL61109010140000071219812874", true },
		{ "SA0380000000608010167519", true },
		{ "MT84MALT011000012345MTLCAST001S", true },
		{ "BR1800360305000010009795493C1", true },
		/* one digit changed */
		{ "DE89370400440532013001", false },
		{ "GB82WEST12345698765431", false },
		{ "NO9386011117948", false },
		/* check digits swapped */
		{ "DE98370400440532013000", false },
		/* wrong length for the country */
		{ "DE8937040044053201300", false },
		{ "DE893704004405320130000", false },
		/* no such country */
		{ "XX89370400440532013000", false },
		/* lowercase, blanks: the validator takes the compact form */
		{ "de89370400440532013000", false },
		{ "DE89 370400440532013000", false },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		bool got = pol_iban_ok((const uint8_t *)t[i].s, strlen(t[i].s));
		if (got != t[i].ok)
			print_error("%s: got %d\n", t[i].s, got);
		assert_int_equal(got, t[i].ok);
	}
	assert_int_equal(pol_iban_length((const uint8_t *)"DE"), 22);
	assert_int_equal(pol_iban_length((const uint8_t *)"NO"), 15);
	assert_int_equal(pol_iban_length((const uint8_t *)"LC"), 32);
	assert_int_equal(pol_iban_length((const uint8_t *)"US"), 0);
	assert_int_equal(pol_iban_length((const uint8_t *)"d1"), 0);
}

/* ---- detector table ------------------------------------------------------- */

struct want {
	const char *text; /* the bytes the span must cover */
	int det;
};

struct dcase {
	const char *in;
	unsigned mask;
	struct want w[5]; /* ends at text NULL */
};

#define H(t, d) { t, POLICY_DET_##d }

static const struct dcase cases[] = {
	/* ---- cards ---- */
	{ "4111111111111111", ALL, { H("4111111111111111", CARD) } },
	{ "pan=4111111111111111&x=1", ALL, { H("4111111111111111", CARD) } },
	{ "4111 1111 1111 1111", ALL, { H("4111 1111 1111 1111", CARD) } },
	{ "4111-1111-1111-1111.", ALL, { H("4111-1111-1111-1111", CARD) } },
	{ "amex 3782 822463 10005 ok", ALL,
	  { H("3782 822463 10005", CARD) } },
	{ "5500000000000004", ALL, { H("5500000000000004", CARD) } },
	{ "2223003122003222", ALL, { H("2223003122003222", CARD) } },
	{ "6011111111111117", ALL, { H("6011111111111117", CARD) } },
	{ "3530111333300000", ALL, { H("3530111333300000", CARD) } },
	{ "4222222222222", ALL, { H("4222222222222", CARD) } }, /* 13 */
	{ "6799990100000000019", ALL, { H("6799990100000000019", CARD) } },
	{ "/cards/4111111111111111/charge", ALL,
	  { H("4111111111111111", CARD) } },
	{ "\"n\":\"5500 0000 0000 0004\"", ALL,
	  { H("5500 0000 0000 0004", CARD) } },
	/* groups after a card (expiry, CVV, another card) do not hide it:
	 * the longest run of whole groups that is a card; the caller finds
	 * a second card after the separator */
	{ "card 4539148803436467 12/26", ALL, { H("4539148803436467", CARD) } },
	{ "4539148803436467 124", ALL, { H("4539148803436467", CARD) } },
	{ "4539148803436467-12-26", ALL, { H("4539148803436467", CARD) } },
	{ "4539 1488 0343 6467 12", ALL, { H("4539 1488 0343 6467", CARD) } },
	{ "cards 4539148803436467 5500000000000004", ALL,
	  { H("4539148803436467", CARD), H("5500000000000004", CARD) } },
	{ "4539148803436467 12x", ALL, { H("4539148803436467", CARD) } },
	/* no group boundary at a card: nothing */
	{ "45391488034364671234 5", ALL, { { 0 } } },
	/* lists of small numbers are not searched for cards (their 13-19
	 * digit windows pass the check digit one time in ten) */
	{ "81 92 22 33 90 47 25 52 74 64", ALL, { { 0 } } },
	{ "call 834 396 8428 511 831 7050 today", ALL, { { 0 } } },
	{ "ts 2026 07 04 20 37 08 230595", ALL, { { 0 } } },
	{ "3782 822463 10005 12/26", ALL, { H("3782 822463 10005", CARD) } },
	/* ... also after a time, an id or a quantity (digits before it) */
	{ "txn 1042 4539148803436467 12/26", ALL, { H("4539148803436467", CARD) } },
	{ "10:00:01 4539 1488 0343 6467 12/26", ALL,
	  { H("4539 1488 0343 6467", CARD) } },
	{ "qty 2 3782-822463-10005-1226", ALL, { H("3782-822463-10005", CARD) } },
	{ "4539 1488 0343 6467 1226", ALL, { H("4539 1488 0343 6467", CARD) } },
	/* a list of years is no card and no expiry */
	{ "2002 2003 2004 2005 2006 2007", ALL, { { 0 } } },
	/* Luhn fails */
	{ "4111111111111112", ALL, { { 0 } } },
	{ "4111 1111 1111 1112", ALL, { { 0 } } },
	/* issuer digit outside 2-6 (timestamps, ids) */
	{ "1234567812345670", ALL, { { 0 } } },
	{ "1700000000000000008", ALL, { { 0 } } },
	{ "0000000000000000", ALL, { { 0 } } },
	/* too short, too long */
	{ "411111111111", ALL, { { 0 } } },
	{ "41111111111111111111", ALL, { { 0 } } },
	/* mixed separators, double separators, glued to letters */
	{ "4111-1111 1111-1111", ALL, { { 0 } } },
	{ "4111  1111  1111  1111", ALL, { { 0 } } },
	{ "x4111111111111111", ALL, { { 0 } } },
	{ "4111111111111111x", ALL, { { 0 } } },
	/* only the card detector asked for */
	{ "4111111111111111 a@b.co", CARD, { H("4111111111111111", CARD) } },
	{ "4111111111111111", EMAIL, { { 0 } } },

	/* ---- SSN ---- */
	{ "123-45-6789", ALL, { H("123-45-6789", SSN) } },
	{ "ssn:123-45-6789.", ALL, { H("123-45-6789", SSN) } },
	{ "ssn 123 45 6789 end", ALL, { H("123 45 6789", SSN) } },
	{ "000-12-3456", ALL, { { 0 } } },
	{ "666-12-3456", ALL, { { 0 } } },
	{ "900-12-3456", ALL, { { 0 } } },
	{ "999-12-3456", ALL, { { 0 } } },
	{ "123-00-4567", ALL, { { 0 } } },
	{ "123-45-0000", ALL, { { 0 } } },
	{ "123456789", ALL, { { 0 } } },       /* no separators: not taken */
	{ "123-45 6789", ALL, { { 0 } } },     /* mixed */
	{ "1123-45-6789", ALL, { { 0 } } },    /* longer number */
	{ "123-45-67890", ALL, { { 0 } } },
	{ "123-45-6789-1", ALL, { { 0 } } },
	{ "9-123-45-6789", ALL, { { 0 } } },
	{ "a123-45-6789", ALL, { { 0 } } },

	/* ---- IBAN ---- */
	{ "DE89370400440532013000", ALL, { H("DE89370400440532013000", IBAN) } },
	{ "iban DE89 3704 0044 0532 0130 00, thanks", ALL,
	  { H("DE89 3704 0044 0532 0130 00", IBAN) } },
	{ "GB82WEST12345698765432", ALL, { H("GB82WEST12345698765432", IBAN) } },
	{ "GB82 WEST 1234 5698 7654 32", ALL,
	  { H("GB82 WEST 1234 5698 7654 32", IBAN) } },
	{ "to:FR1420041010050500013M02606;", ALL,
	  { H("FR1420041010050500013M02606", IBAN) } },
	{ "NO9386011117947", ALL, { H("NO9386011117947", IBAN) } },
	{ "\"MT84MALT011000012345MTLCAST001S\"", ALL,
	  { H("MT84MALT011000012345MTLCAST001S", IBAN) } },
	{ "BR1800360305000010009795493C1", ALL,
	  { H("BR1800360305000010009795493C1", IBAN) } },
	{ "DE89370400440532013001", ALL, { { 0 } } },  /* checksum */
	{ "DE8937040044053201300", ALL, { { 0 } } },   /* short */
	{ "DE893704004405320130001", ALL, { { 0 } } }, /* long */
	{ "DE89 3704 0044 0532 013000", ALL, { { 0 } } }, /* bad grouping */
	{ "DE89 37040044 0532 0130 00", ALL, { { 0 } } },
	{ "de89370400440532013000", ALL, { { 0 } } },  /* lowercase */
	{ "XDE89370400440532013000", ALL, { { 0 } } }, /* not a word start */

	/* ---- e-mail ---- */
	{ "bob@example.com", ALL, { H("bob@example.com", EMAIL) } },
	{ "To: <first.last+tag@mail.example.org>", ALL,
	  { H("first.last+tag@mail.example.org", EMAIL) } },
	{ "email=bob@example.com&x=1", ALL, { H("bob@example.com", EMAIL) } },
	{ "end bob@example.com.", ALL, { H("bob@example.com", EMAIL) } },
	{ "a@b.co", ALL, { H("a@b.co", EMAIL) } },
	{ ".bob@example.com", ALL, { H("bob@example.com", EMAIL) } },
	{ "x@a-b.example.io,y@c.de", ALL,
	  { H("x@a-b.example.io", EMAIL), H("y@c.de", EMAIL) } },
	{ "bob@example", ALL, { { 0 } } },   /* one label */
	{ "bob@example.c", ALL, { { 0 } } }, /* one-letter TLD */
	{ "bob@example.123", ALL, { { 0 } } },
	{ "@example.com", ALL, { { 0 } } },
	{ "bob.@example.com", ALL, { { 0 } } },
	{ "bob@-example.com", ALL, { { 0 } } },
	{ "bob@@example.com", ALL, { { 0 } } },
	{ "user@[10.0.0.1]", ALL, { { 0 } } },

	/* ---- JWT ---- */
	{ "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	  "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
	  "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
	  ALL,
	  { H("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	      "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
	      "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
	      JWT) } },
	/* alg none: empty signature */
	{ "t=eyJhbGciOiJub25lIn0.e30.&x", ALL,
	  { H("eyJhbGciOiJub25lIn0.e30.", JWT) } },
	/* header with newlines: "ew..." */
	{ "ewogImFsZyI6ICJSUzI1NiIKfQ.e30.c2ln", ALL,
	  { H("ewogImFsZyI6ICJSUzI1NiIKfQ.e30.c2ln", JWT) } },
	/* JWE: five parts */
	{ "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y3Q.dGFn",
	  ALL,
	  { H("eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y3Q."
	      "dGFn",
	      JWT) } },
	/* no "alg" in the header, header not JSON, not an object */
	{ "eyJ0eXAiOiJKV1QifQ.e30.c2ln", ALL, { { 0 } } },
	{ "eyJhbGciICJ4In0.e30.c2ln", ALL, { { 0 } } },
	{ "WyJhbGciXQ.e30.c2ln", ALL, { { 0 } } },
	/* two parts only, bad base64url length */
	{ "eyJhbGciOiJub25lIn0.e30", ALL, { { 0 } } },
	{ "eyJhbGciOiJub25lIn0x.e30.sig", ALL, { { 0 } } },
	{ "eye.eye.eye", ALL, { { 0 } } },

	/* ---- bearer ---- */
	{ "Bearer abcdefgh12345", ALL, { H("abcdefgh12345", BEARER) } },
	{ "bearer\t  tok.en~+/abc==", ALL, { H("tok.en~+/abc==", BEARER) } },
	{ "Authorization: BEARER 0123456789abcdef, x", ALL,
	  { H("0123456789abcdef", BEARER) } },
	/* the JWT inside is part of the bearer token */
	{ "Bearer eyJhbGciOiJub25lIn0.e30.", ALL,
	  { H("eyJhbGciOiJub25lIn0.e30.", BEARER) } },
	{ "Bearer short", ALL, { { 0 } } },
	{ "Bearer realm=\"example\"", ALL, { { 0 } } },
	{ "Bearer error_description=\"x\"", ALL, { { 0 } } },
	{ "Bearer", ALL, { { 0 } } },
	{ "Bearerabcdefghijk", ALL, { { 0 } } },
	{ "xBearer abcdefghijk", ALL, { { 0 } } },

	/* ---- API keys ---- */
	{ "AKIAIOSFODNN7EXAMPLE", ALL, { H("AKIAIOSFODNN7EXAMPLE", API_KEY) } },
	{ "key=ASIAIOSFODNN7EXAMPLE;", ALL, { H("ASIAIOSFODNN7EXAMPLE", API_KEY) } },
	{ "AKIAIOSFODNN7EXAMPL", ALL, { { 0 } } },   /* 15 */
	{ "AKIAIOSFODNN7EXAMPLEX", ALL, { { 0 } } }, /* 17 */
	{ "AKIAiosfodnn7example", ALL, { { 0 } } },  /* lowercase */
	{ "AIzaSyA1234567890abcdefghijklmnopqrs_-x", ALL,
	  { H("AIzaSyA1234567890abcdefghijklmnopqrs_-x", API_KEY) } },
	{ "AIzaSyA1234567890abcdefghijklmnop", ALL, { { 0 } } },
	{ "sk_live_4eC39HqLyjWDarjtT1zdp7dc", ALL,
	  { H("sk_live_4eC39HqLyjWDarjtT1zdp7dc", API_KEY) } },
	{ "rk_test_4eC39HqLyjWDarjtT1zdp7dc", ALL,
	  { H("rk_test_4eC39HqLyjWDarjtT1zdp7dc", API_KEY) } },
	{ "sk_live_short", ALL, { { 0 } } },
	{ "pk_live_4eC39HqLyjWDarjtT1zdp7dc", ALL, { { 0 } } }, /* public */
	{ "ghp_0123456789abcdefghijABCDEFGHIJ012345", ALL,
	  { H("ghp_0123456789abcdefghijABCDEFGHIJ012345", API_KEY) } },
	{ "ghs_0123456789abcdefghijABCDEFGHIJ01234", ALL, { { 0 } } }, /* 35 */
	{ "github_pat_11ABCDEFG0123456789_abcdefghijKLMNOPQRSTUV", ALL,
	  { H("github_pat_11ABCDEFG0123456789_abcdefghijKLMNOPQRSTUV", API_KEY) } },
	{ "glpat-0123456789abcdefGHIJ", ALL,
	  { H("glpat-0123456789abcdefGHIJ", API_KEY) } },
	{ "xoxb-123456789012-abcdefABCDEF", ALL,
	  { H("xoxb-123456789012-abcdefABCDEF", API_KEY) } },
	{ "xoxq-123456789012-abcdef", ALL, { { 0 } } },
	{ "xoxp-123", ALL, { { 0 } } },
	{ "my_AKIAIOSFODNN7EXAMPLE", ALL, { H("AKIAIOSFODNN7EXAMPLE", API_KEY) } },
	{ "xAKIAIOSFODNN7EXAMPLE", ALL, { { 0 } } },

	/* ---- several in one string, in order ---- */
	{ "mail bob@example.com card 4111 1111 1111 1111 ssn 123-45-6789 "
	  "iban DE89 3704 0044 0532 0130 00",
	  ALL,
	  { H("bob@example.com", EMAIL), H("4111 1111 1111 1111", CARD),
	    H("123-45-6789", SSN), H("DE89 3704 0044 0532 0130 00", IBAN) } },
	/* an e-mail's local part never reaches back into an earlier hit */
	{ "4111111111111111@example.com", ALL,
	  { H("4111111111111111", CARD) } },
	{ "", ALL, { { 0 } } },
	{ "nothing to see here", ALL, { { 0 } } },
};

static void check_sorted(const struct policy_span *s, int n, size_t len)
{
	for (int i = 0; i < n; i++) {
		assert_true(s[i].len > 0);
		assert_true((size_t)s[i].off + s[i].len <= len);
		if (i)
			assert_true(s[i - 1].off + s[i - 1].len <= s[i].off);
	}
}

static void test_detect_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		const struct dcase *c = &cases[i];
		struct policy_span sp[8];
		size_t len = strlen(c->in);
		int n = policy_detect(c->mask, c->in, len, sp, 8);
		int want = 0;
		while (want < 5 && c->w[want].text)
			want++;
		bool ok = n == want;
		for (int k = 0; ok && k < n; k++)
			ok = sp[k].len == strlen(c->w[k].text) &&
			     memcmp(c->in + sp[k].off, c->w[k].text,
				    sp[k].len) == 0 &&
			     sp[k].detector == c->w[k].det &&
			     sp[k].kind == POLICY_KIND_DETECTOR;
		if (!ok) {
			print_error("case %zu \"%s\": want %d hits, got %d:\n",
				    i, c->in, want, n);
			for (int k = 0; k < n; k++)
				print_error("  %s \"%.*s\"\n",
					    policy_detector_name(sp[k].detector),
					    (int)sp[k].len, c->in + sp[k].off);
		}
		assert_true(ok);
		check_sorted(sp, n, len);
	}
}

/* ---- bounds --------------------------------------------------------------------- */

static void test_detect_args_and_max(void **state)
{
	(void)state;
	struct policy_span sp[2];
	assert_int_equal(policy_detect(ALL, NULL, 1, sp, 2), -EINVAL);
	assert_int_equal(policy_detect(ALL, "x", 1, NULL, 2), -EINVAL);
	assert_int_equal(policy_detect(ALL, "x", 1, sp, 0), -EINVAL);
	assert_int_equal(policy_detect(ALL, NULL, 0, sp, 2), 0);
	const char *three = "a@b.co c@d.co e@f.co";
	assert_int_equal(policy_detect(ALL, three, strlen(three), sp, 2), 2);
	assert_int_equal(policy_detect(0, three, strlen(three), sp, 2), 0);
}

/* Inputs that would make a scanner quadratic or read past the end: runs
 * of triggers, near-misses at the very end of the buffer. Each is placed
 * at the end of a heap block of exactly its size, so AddressSanitizer
 * sees any read past it. */
static void run_exact(const char *s, size_t len)
{
	char *b = malloc(len ? len : 1);
	struct policy_span sp[4];
	memcpy(b, s, len);
	int n = policy_detect(ALL, b, len, sp, 4);
	assert_true(n >= 0 && n <= 4);
	check_sorted(sp, n, len);
	free(b);
}

static void test_detect_edges(void **state)
{
	(void)state;
	static const char *const tails[] = {
		"4",	      "41111",	     "4111 ",	     "4111-",
		"123-",	      "123-45-",     "123-45-678",   "@",
		"a@",	      "a@b",	     "a@b.",	     "a@b.c",
		"e",	      "ey",	     "eyJ",	     "eyJ.",
		"eyJhbGciOiJub25lIn0.", "eyJhbGciOiJub25lIn0.e30",
		"B",	      "Bearer",	     "Bearer ",	     "Bearer abc",
		"A",	      "AKIA",	     "AKIAIOSFODNN7EXAMP",
		"AIza",	      "sk_live_",    "ghp_",	     "xox",
		"xoxb-",      "github_pat_", "glpat-",	     "D",
		"DE",	      "DE8",	     "DE89",	     "DE89 ",
		"DE89 3704",  "DE89 3704 ",  "GB82WEST1234",
	};
	for (size_t i = 0; i < sizeof(tails) / sizeof(*tails); i++)
		run_exact(tails[i], strlen(tails[i]));

	/* Pathological runs, 256 KiB each: must finish (linear scan). */
	size_t n = 256 * 1024;
	char *b = malloc(n);
	static const char *const unit[] = {
		"@", "a@", "1 ", "1-", "4111 ", "ey.", "eyJhbGciOiJub25lIn0.",
		"Bearer ", "DE89 ", "AKIA", "a.", "xoxb-", "0",
	};
	for (size_t u = 0; u < sizeof(unit) / sizeof(*unit); u++) {
		size_t ul = strlen(unit[u]);
		for (size_t i = 0; i < n; i++)
			b[i] = unit[u][i % ul];
		struct policy_span sp[4];
		int k = policy_detect(ALL, b, n, sp, 4);
		assert_true(k >= 0 && k <= 4);
		check_sorted(sp, k, n);
	}
	free(b);
}

/* ---- fast scan == reference scan -------------------------------------------------- */

/* pol_detect_run() finds trigger positions 16 bytes at a time and must
 * emit exactly what the byte-at-a-time pol_detect_run_ref() emits: the
 * same (offset, length, detector) calls in the same order, and the same
 * calls up to the one whose emit() returned false. */

#define REC_MAX 512

struct rec {
	uint32_t off[REC_MAX], len[REC_MAX];
	uint8_t det[REC_MAX];
	unsigned n;
	unsigned stop; /* emit() returns false on this call (1-based); 0 never */
};

static bool rec_emit(void *ctx, uint32_t off, uint32_t len, unsigned det)
{
	struct rec *r = ctx;
	if (r->n == REC_MAX)
		return false; /* same cap for both scanners */
	r->off[r->n] = off;
	r->len[r->n] = len;
	r->det[r->n] = (uint8_t)det;
	r->n++;
	return r->n != r->stop;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static unsigned rn(unsigned k)
{
	return (unsigned)((rnd() >> 16) % k);
}

static void dump(const char *what, const struct rec *r, const uint8_t *t)
{
	print_error("  %s: %u hits\n", what, r->n);
	for (unsigned k = 0; k < r->n; k++)
		print_error("    %u+%u %s \"%.*s\"\n", r->off[k], r->len[k],
			    policy_detector_name(r->det[k]), (int)r->len[k],
			    (const char *)t + r->off[k]);
}

/* Hits by detector, for the planted test to check it is not vacuous. */
static unsigned long same_by_det[POLICY_DET_COUNT];

/* Both scanners on |t| (|n| bytes, the caller makes it the end of a heap
 * block so AddressSanitizer sees reads past it); fails the test on any
 * difference. Returns the number of hits. */
static unsigned same_on(const uint8_t *t, size_t n, unsigned mask,
			unsigned stop)
{
	static struct rec fast, ref;
	fast.n = ref.n = 0;
	fast.stop = ref.stop = stop;
	pol_detect_run(t, n, mask, rec_emit, &fast);
	pol_detect_run_ref(t, n, mask, rec_emit, &ref);
	bool ok = fast.n == ref.n;
	for (unsigned k = 0; ok && k < ref.n; k++)
		ok = fast.off[k] == ref.off[k] && fast.len[k] == ref.len[k] &&
		     fast.det[k] == ref.det[k];
	if (!ok) {
		print_error("fast != reference: mask 0x%x stop %u, %zu bytes:\n",
			    mask, stop, n);
		for (size_t i = 0; i < n; i++)
			print_error("%s%02x", i % 32 ? " " : "\n  ", t[i]);
		print_error("\n");
		dump("reference", &ref, t);
		dump("fast", &fast, t);
	}
	assert_true(ok);
	for (unsigned k = 0; k < ref.n; k++)
		same_by_det[ref.det[k]]++;
	return ref.n;
}

/* same_on() on a copy of |s| that ends where its heap block ends and
 * starts |shift| bytes into it (so also at every address alignment), with
 * no stop and then with a stop at a random hit. */
static unsigned same(const uint8_t *s, size_t n, unsigned mask, size_t shift)
{
	uint8_t *b = malloc(shift + n ? shift + n : 1);
	assert_non_null(b);
	memcpy(b + shift, s, n);
	unsigned hits = same_on(b + shift, n, mask, 0);
	if (hits)
		same_on(b + shift, n, mask, 1 + rn(hits));
	free(b);
	return hits;
}

/* (a) Random bytes: uniform, and from a small alphabet of trigger and
 * separator bytes where near-misses (and some hits) are dense. Every mask
 * in turn. */
static void test_fast_random(void **state)
{
	(void)state;
	static const char dense[] = "0123456789     ---@@..__AAKSIbBeEywrskghilxo"
				    "DEGB=\"\t\n/+~";
	size_t total = 0;
	for (unsigned round = 0; total < (8u << 20); round++) {
		size_t n = rn(4) ? rn(300) : rn(20000);
		uint8_t *b = malloc(n + 1);
		bool uniform = round % 2 == 0;
		for (size_t i = 0; i < n; i++)
			b[i] = uniform ? (uint8_t)rnd()
				       : (uint8_t)dense[rn(sizeof(dense) - 1)];
		same(b, n, round % 128, rn(16));
		same(b, n, ALL, 0);
		free(b);
		total += n;
	}
}

/* ---- planted hits ---- */

struct buf {
	uint8_t b[8192];
	size_t n;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->n + n > sizeof(b->b))
		n = sizeof(b->b) - b->n;
	memcpy(b->b + b->n, s, n);
	b->n += n;
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void putc_(struct buf *b, char c)
{
	put(b, &c, 1);
}

/* |n| characters of |set|. */
static void put_from(struct buf *b, const char *set, unsigned n)
{
	size_t k = strlen(set);
	for (unsigned i = 0; i < n; i++)
		putc_(b, set[rn((unsigned)k)]);
}

#define DIGITS "0123456789"
#define UPNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZ" DIGITS
#define ALNUM "abcdefghijklmnopqrstuvwxyz" UPNUM

/* Most generators make a valid value and now and then a near-miss (one
 * length or character off). */
static bool miss(void)
{
	return rn(8) == 0;
}

static void gen_card(struct buf *b)
{
	uint8_t d[20];
	unsigned nd = 13 + rn(7);
	if (miss())
		nd = 11 + rn(10);
	d[0] = (uint8_t)(miss() ? '0' + rn(10) : '2' + rn(5));
	for (unsigned k = 1; k < nd; k++)
		d[k] = (uint8_t)('0' + rn(10));
	for (unsigned c = 0; c < 10 && !pol_luhn_ok(d, nd); c++)
		d[nd - 1] = (uint8_t)('0' + c);
	if (miss())
		d[nd - 1] = (uint8_t)('0' + rn(10));
	char sep = rn(3) == 0 ? 0 : rn(2) ? ' ' : '-';
	bool fours = rn(2);
	for (unsigned k = 0; k < nd; k++) {
		if (k && sep && (fours ? k % 4 == 0 : rn(4) == 0))
			putc_(b, miss() ? (char)(sep ^ ' ' ^ '-') : sep);
		putc_(b, (char)d[k]);
	}
}

static void gen_ssn(struct buf *b)
{
	char s[32];
	unsigned a = 1 + rn(899), g = 1 + rn(99), v = 1 + rn(9999);
	if (miss())
		a = rn(1000);
	char sep = rn(3) ? '-' : ' ';
	snprintf(s, sizeof(s), "%03u%c%02u%c%04u", a, sep, g,
		 miss() ? '-' : sep, v);
	puts_(b, s);
}

static void gen_email(struct buf *b)
{
	if (rn(4) == 0)
		putc_(b, '.');
	put_from(b, ALNUM "._%+-", 1 + rn(miss() ? 80 : 20));
	put_from(b, ALNUM, 1);
	putc_(b, '@');
	unsigned labels = 1 + rn(3);
	for (unsigned l = 0; l < labels; l++) {
		put_from(b, "abcdefghijklmnopqrstuvwxyz" DIGITS, 1);
		put_from(b, "abcdefghijklmnopqrstuvwxyz" DIGITS "-", rn(12));
		put_from(b, "abcdefghijklmnopqrstuvwxyz" DIGITS, 1);
		putc_(b, '.');
	}
	put_from(b, "abcdefghijklmnopqrstuvwxyz", miss() ? 1 : 2 + rn(5));
}

/* Appends the decimal digits of |c| for mod-97 (letters are 10..35). */
static unsigned mod97(unsigned r, uint8_t c)
{
	if (c >= '0' && c <= '9')
		return (r * 10 + (c - '0')) % 97;
	return (r * 100 + (c - 'A' + 10)) % 97;
}

static void gen_iban(struct buf *b)
{
	static const char *const cc[] = { "DE", "GB", "FR", "NL", "NO",
					   "MT", "BR", "LC", "CH", "BE" };
	const char *c = cc[rn(sizeof(cc) / sizeof(*cc))];
	unsigned len = pol_iban_length((const uint8_t *)c);
	uint8_t s[40];
	s[0] = (uint8_t)c[0];
	s[1] = (uint8_t)c[1];
	for (unsigned k = 4; k < len; k++)
		s[k] = (uint8_t)(rn(4) ? DIGITS[rn(10)] : UPNUM[rn(26)]);
	unsigned r = 0;
	for (unsigned k = 4; k < len; k++)
		r = mod97(r, s[k]);
	r = mod97(mod97(mod97(mod97(r, s[0]), s[1]), '0'), '0');
	s[2] = (uint8_t)('0' + (98 - r) / 10);
	s[3] = (uint8_t)('0' + (98 - r) % 10);
	assert_true(pol_iban_ok(s, len));
	if (miss())
		s[4 + rn(len - 4)] = (uint8_t)UPNUM[rn(36)];
	bool spaced = rn(2);
	for (unsigned k = 0; k < len; k++) {
		if (spaced && k && k % 4 == 0)
			putc_(b, ' ');
		putc_(b, (char)s[k]);
	}
}

#define B64URL ALNUM "-_"

static void gen_jwt(struct buf *b)
{
	static const char *const hdr[] = {
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", /* alg HS256 */
		"eyJhbGciOiJub25lIn0",			/* alg none */
		"ewogImFsZyI6ICJSUzI1NiIKfQ",		/* with newlines */
		"eyJ0eXAiOiJKV1QifQ",			/* no alg */
		"eyJhbGci",				/* truncated */
	};
	puts_(b, hdr[rn(sizeof(hdr) / sizeof(*hdr))]);
	unsigned parts = rn(4) ? 3 : rn(2) ? 5 : 2 + rn(5);
	for (unsigned p = 1; p < parts; p++) {
		putc_(b, '.');
		put_from(b, B64URL, p == 1 ? 1 + rn(40) : rn(44));
	}
}

static void gen_bearer(struct buf *b)
{
	static const char *const scheme[] = { "Bearer", "bearer", "BEARER",
					      "bEaReR" };
	puts_(b, scheme[rn(4)]);
	put_from(b, " \t", miss() ? 0 : 1 + rn(3));
	put_from(b, ALNUM "-._~+/", 4 + rn(40));
	put_from(b, "=", rn(3));
	if (miss())
		putc_(b, '"');
}

static void gen_key(struct buf *b)
{
	static const char *const k[] = {
		"AKIA", "ASIA", "AIza", "sk_live_", "sk_test_", "rk_live_",
		"rk_test_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
		"github_pat_", "glpat-", "xoxb-", "xoxa-", "xoxp-", "xoxr-",
		"xoxs-",
	};
	unsigned i = rn(sizeof(k) / sizeof(*k));
	puts_(b, k[i]);
	int d = miss() ? (int)rn(5) - 2 : 0; /* a length near the limit */
	switch (i) {
	case 0: case 1: put_from(b, UPNUM, (unsigned)(16 + d)); break;
	case 2: put_from(b, B64URL, (unsigned)(35 + d)); break;
	case 3: case 4: case 5: case 6:
		put_from(b, ALNUM, (unsigned)(10 + d) + rn(20));
		break;
	case 12: put_from(b, ALNUM "_", (unsigned)(22 + d) + rn(20)); break;
	case 13: put_from(b, B64URL, (unsigned)(20 + d) + rn(10)); break;
	default:
		if (i >= 14)
			put_from(b, ALNUM "-", (unsigned)(10 + d) + rn(10));
		else
			put_from(b, ALNUM, (unsigned)(36 + d) + rn(6));
	}
}

/* Random bytes, from a mixed alphabet with high bytes. */
static void gen_filler(struct buf *b)
{
	for (unsigned k = rn(24); k > 0; k--)
		putc_(b, rn(4) ? (char)ALNUM " .,-@:"[rn(sizeof(ALNUM) + 6)]
			       : (char)rnd());
}

static void (*const gens[])(struct buf *) = {
	gen_card, gen_ssn, gen_email, gen_iban, gen_jwt, gen_bearer, gen_key,
	gen_filler,
};

/* Separators, among them none, letters and digits (which glue values to
 * their neighbours, so no hit) and bytes >= 0x80. */
static const char *const seps[] = {
	" ", "  ", "\n", ", ", "\"", "\":\"", "=", "&", "/", ";", "\t", "",
	"x", "9", "-", "_", ".", "@", "<", ">", "{\"k\":\"", "(", "\xc3\xa9",
	"\x80", "\xff", "\r\n", "+", "'",
};

/* A mixture of 1-12 values and fillers with random separators. */
static void gen_mixture(struct buf *b)
{
	b->n = 0;
	for (unsigned k = 1 + rn(12); k > 0; k--) {
		puts_(b, seps[rn(sizeof(seps) / sizeof(*seps))]);
		gens[rn(sizeof(gens) / sizeof(*gens))](b);
	}
	if (rn(2))
		puts_(b, seps[rn(sizeof(seps) / sizeof(*seps))]);
}

/* (b) Mixtures of planted values, each behind 0-31 bytes of filler (so at
 * every offset from a 16-byte block), and cut at each of its last 40
 * bytes (so every value also meets the buffer end). */
static void test_fast_planted(void **state)
{
	(void)state;
	static struct buf mix, b;
	memset(same_by_det, 0, sizeof(same_by_det));
	for (unsigned round = 0; round < 3000; round++) {
		gen_mixture(&mix);
		for (unsigned off = 0; off < 32; off++) {
			b.n = 0;
			for (unsigned k = 0; k < off; k++)
				putc_(&b, rn(2) ? ' ' : (char)ALNUM[rn(62)]);
			put(&b, (const char *)mix.b, mix.n);
			same(b.b, b.n, ALL, off % 16);
			same(b.b, b.n, 1 + rn(ALL), 0);
		}
		for (size_t cut = mix.n > 40 ? mix.n - 40 : 0; cut < mix.n;
		     cut++)
			same(mix.b, cut, ALL, 0);
	}
	/* Not vacuous: every detector found its planted values often. */
	for (unsigned d = 0; d < POLICY_DET_COUNT; d++) {
		if (same_by_det[d] < 1000)
			print_error("%s: only %lu hits\n",
				    policy_detector_name(d), same_by_det[d]);
		assert_true(same_by_det[d] >= 1000);
	}
}

/* (c) Every combination of detectors on the same mixtures. */
static void test_fast_masks(void **state)
{
	(void)state;
	static struct buf mix;
	for (unsigned round = 0; round < 300; round++) {
		gen_mixture(&mix);
		for (unsigned mask = 0; mask <= ALL; mask++)
			same(mix.b, mix.n, mask, round % 16);
	}
	/* Bits outside POLICY_DET_ALL are ignored by both. */
	gen_mixture(&mix);
	same(mix.b, mix.n, ~0u, 0);
}

/* Every value of the two bytes around the start of a hit, i.e. the bytes
 * the fast scanner's candidate test looks at: before it and its first
 * byte, its first and second bytes, its second and third bytes. With all
 * detectors and with the hit's own alone, so a gap in one detector's
 * trigger class cannot hide behind another's. */
static void test_fast_trigger_bytes(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		unsigned mask;
	} hits[] = {
		{ "4111 1111 1111 1111", CARD },
		{ "4-111-1111-1111-1111", CARD },
		{ "5500000000000004", CARD },
		{ "123-45-6789", SSN },
		{ "123 45 6789", SSN },
		{ "DE89370400440532013000", IBAN },
		{ "a@b.co", EMAIL },
		{ "bob@example.com", EMAIL },
		{ "eyJhbGciOiJub25lIn0.e30.", JWT },
		{ "ewogImFsZyI6ICJSUzI1NiIKfQ.e30.c2ln", JWT },
		{ "Bearer abcdefgh12345", BEARER },
		{ "bEARER abcdefgh12345", BEARER },
		{ "AKIAIOSFODNN7EXAMPLE", KEY },
		{ "ASIAIOSFODNN7EXAMPLE", KEY },
		{ "AIzaSyA1234567890abcdefghijklmnopqrs_-x", KEY },
		{ "sk_live_4eC39HqLyjWDarjtT1zdp7dc", KEY },
		{ "rk_test_4eC39HqLyjWDarjtT1zdp7dc", KEY },
		{ "ghp_0123456789abcdefghijABCDEFGHIJ012345", KEY },
		{ "github_pat_11ABCDEFG0123456789_abcdefghijKLMNOPQRSTUV", KEY },
		{ "glpat-0123456789abcdefGHIJ", KEY },
		{ "xoxb-123456789012-abcdefABCDEF", KEY },
	};
	for (size_t h = 0; h < sizeof(hits) / sizeof(*hits); h++) {
		size_t n = strlen(hits[h].s) + 2;
		uint8_t *t = malloc(n);
		for (size_t at = 0; at < 3; at++) {
			memcpy(t + 1, hits[h].s, n - 2);
			t[0] = t[n - 1] = ' ';
			/* The unchanged value is found by both. */
			assert_int_equal(same_on(t, n, hits[h].mask, 0), 1);
			for (unsigned v = 0; v < 65536; v++) {
				t[at] = (uint8_t)v;
				t[at + 1] = (uint8_t)(v >> 8);
				same_on(t, n, ALL, 0);
				same_on(t, n, hits[h].mask, 0);
			}
		}
		free(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_luhn),
		cmocka_unit_test(test_ssn_ranges),
		cmocka_unit_test(test_iban_validator),
		cmocka_unit_test(test_detect_table),
		cmocka_unit_test(test_detect_args_and_max),
		cmocka_unit_test(test_detect_edges),
		cmocka_unit_test(test_fast_random),
		cmocka_unit_test(test_fast_planted),
		cmocka_unit_test(test_fast_masks),
		cmocka_unit_test(test_fast_trigger_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
