/* Counter names, summing and printing. See counters.h. */
#include "sealtap/counters.h"

static const char *const names[] = {
#define ST_CTR_NAME(name, help) #name,
	ST_COUNTER_LIST(ST_CTR_NAME)
#undef ST_CTR_NAME
};

static const char *const helps[] = {
#define ST_CTR_HELP(name, help) help,
	ST_COUNTER_LIST(ST_CTR_HELP)
#undef ST_CTR_HELP
};

int counters_is_gauge(enum st_counter id)
{
	return id == ST_CTR_flow_active_max || id == ST_CTR_reasm_ooo_bytes_max;
}

const char *counters_name(enum st_counter id)
{
	return (unsigned)id < ST_CTR__COUNT ? names[id] : "?";
}

const char *counters_help(enum st_counter id)
{
	return (unsigned)id < ST_CTR__COUNT ? helps[id] : "?";
}

void counters_sum(struct st_counters *dst, const struct st_counters *src)
{
	for (unsigned i = 0; i < ST_CTR__COUNT; i++) {
		uint64_t v = st_ctr_get(&src->v[i]); /* |src| may be live */
		if (counters_is_gauge(i))
			dst->v[i] = dst->v[i] > v ? dst->v[i] : v;
		else
			dst->v[i] += v;
	}
}

void counters_write_json(FILE *out, const struct st_counters *c)
{
	const char *sep = "";
	fputc('{', out);
	for (unsigned i = 0; i < ST_CTR__COUNT; i++) {
		if (!c->v[i])
			continue;
		fprintf(out, "%s\"%s\":%llu", sep, names[i],
			(unsigned long long)c->v[i]);
		sep = ",";
	}
	fputc('}', out);
}

void counters_write_text(FILE *out, const struct st_counters *c)
{
	for (unsigned i = 0; i < ST_CTR__COUNT; i++)
		if (c->v[i])
			fprintf(out, "%-28s %14llu  # %s\n", names[i],
				(unsigned long long)c->v[i], helps[i]);
}
