/* libFuzzer target for the token layer (src/seal_token.c) and the open
 * paths behind it (seal_gcm_open_detached, seal_siv_open_detached, the
 * hash check).
 *
 * Input format:
 *
 *   input := mode (u8) rest
 *   mode % 4 == 0: rest is token text from outside. It is parsed; if it
 *                  parses, decoded into a buffer of exactly raw_len bytes,
 *                  and opened with every kind's context (of the key id
 *                  "fz" and of the token's own key id) for field "f",
 *                  record "r". Must not crash; a parse must agree with
 *                  seal_token_len().
 *   mode % 4 == 1, 2, 3 (GCM, SIV, hash):
 *                  rest := pos (u16, big-endian) xor (u8) value
 *                  |value| is sealed into a token, byte |pos| % len of
 *                  the text is XORed with |xor|, and the result opened.
 *                  Invariants (abort on violation): an untouched token
 *                  opens to exactly |value|; a touched token never opens.
 *
 * Outputs go to heap buffers of exactly the announced length, so
 * AddressSanitizer sees any write past them.
 *
 * Seeds: tests/fuzz/seeds/token. They contain valid tokens for the fixed
 * DEK below, so they are written by this target itself:
 *
 *   FUZZ_TOKEN_WRITE_SEEDS=tests/fuzz/seeds/token \
 *       build-fuzz/tests/fuzz/fuzz_token -runs=0
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sealtap/seal.h"
#include "seed_file.h"

static const uint8_t fz_dek[SEAL_DEK_LEN] = {
	'f', 'u', 'z', 'z', ' ', 'o', 'n', 'l', 'y', ' ', 'k', 'e', 'y', ' ',
	'-', '-', 'n', 'o', 't', ' ', 'a', ' ', 's', 'e', 'c', 'r', 'e', 't',
	'!', '!', '!', '!',
};

struct fz_keys {
	struct seal_gcm *g;
	struct seal_siv *s;
	struct seal_hash *h;
};

static struct fz_keys fz;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_token: invariant violated: %s\n", what);
	abort();
}

/* |seal| 0 makes an open-only GCM context: a fixed field may be given to
 * only one sealing context per key id in a process. */
static void keys_new(struct fz_keys *k, const char *kid, int seal)
{
	/* A budget far beyond any run; the fixed field is arbitrary here
	 * (nothing leaves the process). */
	struct seal_gcm_cfg cfg = {.fixed = 0x0000017fu,
				   .max_seals = UINT64_MAX};
	if (seal_gcm_new(fz_dek, "fuzz-tenant", kid, seal ? &cfg : NULL,
			 &k->g) < 0 ||
	    seal_siv_new(fz_dek, "fuzz-tenant", kid, &k->s) < 0 ||
	    seal_hash_new(fz_dek, "fuzz-tenant", kid, &k->h) < 0)
		die("context setup");
}

static void keys_free(struct fz_keys *k)
{
	seal_gcm_free(k->g);
	seal_siv_free(k->s);
	seal_hash_free(k->h);
}

/* Opens |text| with every context of |k|; only checks it does not crash
 * and that a successful open returns a sane length. */
static void open_all(struct fz_keys *k, const char *text, size_t len)
{
	size_t cap = len; /* a plaintext is never longer than its token */
	uint8_t *out = malloc(cap ? cap : 1);
	if (!out)
		return;
	int r = seal_token_open_gcm(k->g, "f", 1, "r", 1, text, len, out, cap);
	if (r > (int)cap)
		die("gcm open length");
	r = seal_token_open_siv(k->s, "f", 1, text, len, out, cap);
	if (r > (int)cap)
		die("siv open length");
	(void)seal_token_check_hash(k->h, "f", 1, (const uint8_t *)text,
				    len / 2, text, len);
	free(out);
}

static void from_outside(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	if (!text)
		return;
	memcpy(text, data, size);
	struct seal_token t;
	int rc = seal_token_parse(text, size, &t);
	if (rc == 0) {
		if (seal_token_len(t.key_id_len, t.raw_len) != size)
			die("parsed length disagrees with seal_token_len");
		uint8_t *raw = malloc(t.raw_len);
		if (raw) {
			if (seal_token_decode(&t, raw, t.raw_len) !=
			    (int)t.raw_len)
				die("decode length");
			/* Re-encoding the decoded bytes gives the text back:
			 * parsing is strict, so there is one spelling. */
			char kid[SEAL_KEY_ID_MAX + 1];
			memcpy(kid, t.key_id, t.key_id_len);
			kid[t.key_id_len] = '\0';
			char *again = malloc(size);
			if (again &&
			    (seal_token_encode(t.kind, kid, t.key_id_len, raw,
					       t.raw_len, again, size) !=
				     (int)size ||
			     memcmp(again, text, size) != 0))
				die("token does not re-encode to itself");
			free(again);
			free(raw);
			/* Also open with contexts of the token's own key id,
			 * so the crypto paths run, not just -ENOKEY. */
			struct fz_keys own;
			keys_new(&own, kid, 0);
			open_all(&own, text, size);
			keys_free(&own);
		}
	} else if (rc != -EINVAL && rc != -EPROTONOSUPPORT && rc != -EILSEQ &&
		   rc != -ENODATA && rc != -EMSGSIZE) {
		die("parse returned an undocumented error");
	}
	open_all(&fz, text, size);
	free(text);
}

static void round_trip(int kind, const uint8_t *data, size_t size)
{
	if (size < 3)
		return;
	size_t pos = ((size_t)data[0] << 8) | data[1];
	uint8_t x = data[2];
	const uint8_t *v = data + 3;
	size_t vlen = size - 3;
	if (vlen > SEAL_VALUE_MAX)
		vlen = SEAL_VALUE_MAX;

	/* room for the largest payload of the three kinds */
	size_t raw_max = vlen + SEAL_GCM_OVERHEAD;
	if (raw_max < SEAL_HASH_LEN)
		raw_max = SEAL_HASH_LEN;
	size_t tcap = seal_token_len(2, raw_max);
	char *tok = malloc(tcap);
	uint8_t *back = malloc(vlen ? vlen : 1);
	if (!tok || !back)
		die("malloc");
	int tl;
	if (kind == 1)
		tl = seal_token_seal_gcm(fz.g, "f", 1, "r", 1, v, vlen, tok,
					 tcap);
	else if (kind == 2)
		tl = seal_token_seal_siv(fz.s, "f", 1, v, vlen, tok, tcap);
	else
		tl = seal_token_hash(fz.h, "f", 1, v, vlen, tok, tcap);
	if (tl <= 0)
		die("seal failed");
	size_t p = pos % (size_t)tl;
	tok[p] = (char)(tok[p] ^ x);
	int r;
	if (kind == 1)
		r = seal_token_open_gcm(fz.g, "f", 1, "r", 1, tok, (size_t)tl,
					back, vlen);
	else if (kind == 2)
		r = seal_token_open_siv(fz.s, "f", 1, tok, (size_t)tl, back,
					vlen);
	else
		r = seal_token_check_hash(fz.h, "f", 1, v, vlen, tok,
					  (size_t)tl);
	if (x == 0) {
		if (kind != 3 && (r != (int)vlen || memcmp(back, v, vlen) != 0))
			die("untouched token did not open to its value");
		if (kind == 3 && r != 0)
			die("untouched hash token did not verify");
	} else if (r >= 0) {
		die("tampered token opened");
	}
	free(tok);
	free(back);
}

static void write_seeds(const char *dir)
{
	static const char *values[] = {"", "x", "alice@example.com",
				       "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"};
	int n = 0;
	for (int kind = 0; kind < 4; kind++) {
		for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
			uint8_t buf[512];
			size_t len = 0, vl = strlen(values[i]);
			buf[len++] = (uint8_t)kind;
			if (kind == 0) {
				/* valid tokens of each kind, for the parser */
				int tl;
				char *t = (char *)buf + 1;
				size_t cap = sizeof(buf) - 1;
				const uint8_t *v = (const uint8_t *)values[i];
				if (i % 3 == 0)
					tl = seal_token_seal_gcm(fz.g, "f", 1,
								 "r", 1, v, vl,
								 t, cap);
				else if (i % 3 == 1)
					tl = seal_token_seal_siv(fz.s, "f", 1,
								 v, vl, t, cap);
				else
					tl = seal_token_hash(fz.h, "f", 1, v,
							     vl, t, cap);
				if (tl < 0)
					die("seed seal");
				len += (size_t)tl;
			} else {
				buf[len++] = 0;
				buf[len++] = (uint8_t)(7 * i);
				buf[len++] = (uint8_t)(i == 0 ? 0 : 1u << i);
				memcpy(buf + len, values[i], vl);
				len += vl;
			}
			char name[32];
			snprintf(name, sizeof(name), "seed-%d-%zu", kind, i);
			if (fuzz_seed_write(dir, name, buf, len, "", 0))
				n++;
		}
	}
	fprintf(stderr, "fuzz_token: wrote %d seeds to %s\n", n, dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	keys_new(&fz, "fz", 1);
	const char *dir = getenv("FUZZ_TOKEN_WRITE_SEEDS");
	if (dir)
		write_seeds(dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	int mode = data[0] % 4;
	if (mode == 0)
		from_outside(data + 1, size - 1);
	else
		round_trip(mode, data + 1, size - 1);
	return 0;
}
