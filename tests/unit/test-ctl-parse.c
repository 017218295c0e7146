/* The control request parser and the reply encoder, fed good, malformed,
 * oversized and random input through a command table of the test's own
 * (no vbd needed). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "control/ctl-int.h"
#include "common/log.h"
#include "tests/lib/test.h"

static int exec_calls;
static int exec_ret;

static int fake_exec(struct ctl_request *req)
{
	exec_calls++;
	if (exec_ret == 0)
		json_object_set_new(ctl_reply(req), "answer", json_integer(42));
	if (exec_ret < 0)
		return ctl_error(req, exec_ret, "fake failed");
	return exec_ret;
}

static const struct ctl_arg b_args[] = {
	{ "timeout", JSON_REAL, false },
	{ "flag", JSON_TRUE, false },
	{ NULL, 0, false },
};
static const struct ctl_arg c_args[] = {
	{ "image", JSON_STRING, true },
	{ "n", JSON_INTEGER, false },
	{ NULL, 0, false },
};
static const struct ctl_cmd_entry a_entry = { .name = "a", .usage = "a", .exec = fake_exec };
static const struct ctl_cmd_entry b_entry = { .name = "b", .args = b_args,
					      .usage = "b [timeout]", .exec = fake_exec };
static const struct ctl_cmd_entry c_entry = { .name = "c-d", .args = c_args,
					      .usage = "c-d image", .exec = fake_exec };
static const struct ctl_cmd_entry *const table[] = { &a_entry, &b_entry, &c_entry, NULL };

/* Returns the parser's result; *name is the entry found. */
static int parse(const char *s, size_t len, const char **name, char *msg, size_t msglen)
{
	const struct ctl_cmd_entry *e = NULL;
	json_t *args = NULL;
	int r;

	msg[0] = '\0';
	r = ctl_parse_request(s, len, table, &e, &args, msg, msglen);
	*name = e ? e->name : NULL;
	if (r == 0) {
		CHECK(e != NULL);
		CHECK(json_is_object(args));
	} else {
		CHECK(e == NULL);
		CHECK(args == NULL);
		CHECK(msg[0] != '\0');		/* every error says why */
	}
	json_decref(args);
	return r;
}

static int p(const char *s)
{
	char msg[CTL_MSG_MAX];
	const char *name;

	return parse(s, strlen(s), &name, msg, sizeof(msg));
}

static void test_good(void)
{
	char msg[CTL_MSG_MAX];
	const char *name;

	CHECK_EQ(parse("{\"cmd\":\"a\"}", 11, &name, msg, sizeof(msg)), 0);
	CHECK(name && strcmp(name, "a") == 0);
	CHECK_EQ(p("  {\"cmd\" : \"b\", \"timeout\": 5}  "), 0);
	CHECK_EQ(p("{\"cmd\":\"b\",\"timeout\":0.25,\"flag\":false}"), 0);
	CHECK_EQ(p("{\"timeout\":1e3,\"cmd\":\"b\"}"), 0);	/* order free */
	CHECK_EQ(p("{\"cmd\":\"c-d\",\"image\":\"/x\"}"), 0);
	CHECK_EQ(p("{\"cmd\":\"c-d\",\"image\":\"/p\\u00e9\",\"n\":3}"), 0);
}

static void test_malformed(void)
{
	char msg[CTL_MSG_MAX];
	const char *name;

	CHECK_EQ(p(""), -EINVAL);
	CHECK_EQ(p("   "), -EINVAL);
	CHECK_EQ(p("stats"), -EINVAL);
	CHECK_EQ(p("{\"cmd\":\"a\""), -EINVAL);		/* truncated */
	CHECK_EQ(p("{\"cmd\":\"a\"}}"), -EINVAL);		/* trailing junk */
	CHECK_EQ(p("{\"cmd\":\"a\"}{\"cmd\":\"a\"}"), -EINVAL);	/* two objects */
	CHECK_EQ(p("{'cmd':'a'}"), -EINVAL);
	CHECK_EQ(p("[\"cmd\",\"a\"]"), -EINVAL);		/* not an object */
	CHECK_EQ(p("[]"), -EINVAL);
	CHECK_EQ(p("42"), -EINVAL);
	CHECK_EQ(p("\"a\""), -EINVAL);
	CHECK_EQ(p("null"), -EINVAL);
	CHECK_EQ(p("{}"), -EINVAL);				/* no cmd */
	CHECK_EQ(p("{\"command\":\"a\"}"), -EINVAL);
	CHECK_EQ(p("{\"cmd\":5}"), -EINVAL);
	CHECK_EQ(p("{\"cmd\":null}"), -EINVAL);
	CHECK_EQ(p("{\"cmd\":[\"a\"]}"), -EINVAL);
	CHECK_EQ(p("{\"cmd\":{\"a\":1}}"), -EINVAL);
	CHECK_EQ(p("{\"cmd\":\"a\",\"cmd\":\"b\"}"), -EINVAL);	/* duplicate key */
	CHECK_EQ(p("{\"cmd\":\"\\xff\"}"), -EINVAL);		/* bad escape */

	/* unknown command: ENOSYS, so a client can tell "too old" apart */
	CHECK_EQ(parse("{\"cmd\":\"nope\"}", 14, &name, msg, sizeof(msg)), -ENOSYS);
	CHECK(strstr(msg, "nope") != NULL);
	CHECK_EQ(p("{\"cmd\":\"\"}"), -ENOSYS);
	CHECK_EQ(p("{\"cmd\":\"A\"}"), -ENOSYS);		/* names are exact */
	CHECK_EQ(p("{\"cmd\":\"a \"}"), -ENOSYS);

	/* arguments: unknown, wrong type, missing */
	CHECK_EQ(parse("{\"cmd\":\"a\",\"x\":1}", 17, &name, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "unknown argument") != NULL);
	CHECK_EQ(p("{\"cmd\":\"b\",\"timeout\":\"5\"}"), -EINVAL);
	CHECK_EQ(p("{\"cmd\":\"b\",\"timeout\":null}"), -EINVAL);
	CHECK_EQ(p("{\"cmd\":\"b\",\"timeout\":true}"), -EINVAL);
	CHECK_EQ(p("{\"cmd\":\"b\",\"flag\":1}"), -EINVAL);
	CHECK_EQ(p("{\"cmd\":\"c-d\"}"), -EINVAL);		/* image required */
	CHECK_EQ(parse("{\"cmd\":\"c-d\",\"image\":7}", 23, &name, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "must be a string") != NULL);
	CHECK_EQ(p("{\"cmd\":\"c-d\",\"image\":\"/x\",\"n\":1.5}"), -EINVAL);
	CHECK_EQ(p("{\"cmd\":\"c-d\",\"image\":[\"/x\"]}"), -EINVAL);
}

static void test_nul_and_size(void)
{
	char msg[CTL_MSG_MAX];
	const char *name;
	static const char nul[] = "{\"cmd\":\"a\"}\0junk";
	size_t big = CTL_LINE_MAX + 10;
	char *s = malloc(big);

	REQUIRE(s);
	CHECK_EQ(parse(nul, sizeof(nul) - 1, &name, msg, sizeof(msg)), -EINVAL);
	CHECK_EQ(parse(nul, 11, &name, msg, sizeof(msg)), 0);	/* length honoured */

	/* The longest line the server hands over parses; one byte more is
	 * refused before JSON ever sees it. */
	memset(s, ' ', big);
	memcpy(s, "{\"cmd\":\"a\"}", 11);
	CHECK_EQ(parse(s, CTL_LINE_MAX - 1, &name, msg, sizeof(msg)), 0);
	CHECK_EQ(parse(s, CTL_LINE_MAX, &name, msg, sizeof(msg)), -EMSGSIZE);
	CHECK_EQ(parse(s, big, &name, msg, sizeof(msg)), -EMSGSIZE);

	/* Deep nesting within the limit: an error, not a stack overflow. */
	memset(s, '[', CTL_LINE_MAX - 1);
	CHECK_EQ(parse(s, CTL_LINE_MAX - 1, &name, msg, sizeof(msg)), -EINVAL);
	memset(s, '{', CTL_LINE_MAX - 1);
	CHECK_EQ(parse(s, CTL_LINE_MAX - 1, &name, msg, sizeof(msg)), -EINVAL);

	/* A long string argument inside the limit is fine, its error message
	 * is bounded. */
	{
		size_t n = snprintf(s, big, "{\"cmd\":\"");
		memset(s + n, 'z', 60000);
		n += 60000;
		n += snprintf(s + n, big - n, "\"}");
		CHECK_EQ(parse(s, n, &name, msg, sizeof(msg)), -ENOSYS);
		CHECK(strlen(msg) < 200);
	}
	/* a tiny message buffer truncates, never overflows */
	{
		char tiny[8];
		CHECK_EQ(parse("{}", 2, &name, tiny, sizeof(tiny)), -EINVAL);
		CHECK(strlen(tiny) == sizeof(tiny) - 1);
	}
	free(s);
}

/* Mutations of valid requests and random bytes: the parser answers 0 or
 * an error with a message, and never crashes (run under ASan). */
static void test_random(void)
{
	static const char *const seeds[] = {
		"{\"cmd\":\"a\"}", "{\"cmd\":\"b\",\"timeout\":5}",
		"{\"cmd\":\"c-d\",\"image\":\"/x\",\"n\":3}", "[{\"cmd\":\"a\"}]",
		"{\"cmd\":\"b\",\"flag\":true,\"timeout\":1.5e-3}",
	};
	static const char alphabet[] = "{}[]\":,\\ \t\n0123456789.eE+-truefalsnlcmdab\x00\xff\xc3\xa9u";
	char buf[256], msg[CTL_MSG_MAX];
	unsigned seed = 12345;
	int ok = 0, bad = 0;

	for (int i = 0; i < 200000; i++) {
		const char *s = seeds[i % 5];
		size_t len = strlen(s);
		const char *name;
		int r;

		memcpy(buf, s, len);
		for (int m = 0, nm = 1 + rand_r(&seed) % 4; m < nm; m++) {
			size_t pos = len ? (size_t)rand_r(&seed) % len : 0;
			char c = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
			switch (rand_r(&seed) % 4) {
			case 0: buf[pos] = c; break;			/* replace */
			case 1: if (len < sizeof(buf) - 1) {		/* insert */
					memmove(buf + pos + 1, buf + pos, len - pos);
					buf[pos] = c;
					len++;
				}
				break;
			case 2: if (len) {				/* delete */
					memmove(buf + pos, buf + pos + 1, len - pos - 1);
					len--;
				}
				break;
			case 3: len = pos; break;			/* truncate */
			}
		}
		if (i % 7 == 0) {					/* pure noise */
			len = (size_t)rand_r(&seed) % sizeof(buf);
			for (size_t k = 0; k < len; k++)
				buf[k] = (char)rand_r(&seed);
		}
		r = parse(buf, len, &name, msg, sizeof(msg));
		CHECK(r == 0 || r == -EINVAL || r == -ENOSYS);
		if (r == 0)
			ok++;
		else
			bad++;
	}
	CHECK(ok > 100);	/* the mutations sometimes stay valid */
	CHECK(bad > 100000);
}

static void check_line(const char *line, size_t len, bool ok, const char *error)
{
	json_t *o;

	REQUIRE(line);
	CHECK_EQ(strlen(line), len);
	CHECK(len > 0 && line[len - 1] == '\n');
	CHECK(memchr(line, '\n', len - 1) == NULL);	/* one line */
	o = json_loadb(line, len, 0, NULL);
	REQUIRE(json_is_object(o));
	CHECK(json_is_boolean(json_object_get(o, "ok")));
	CHECK(json_is_true(json_object_get(o, "ok")) == ok);
	if (error) {
		CHECK(strcmp(json_string_value(json_object_get(o, "error")), error) == 0);
		CHECK(json_is_string(json_object_get(o, "message")));
	}
	json_decref(o);
}

static void test_replies(void)
{
	struct ctl_request req = { 0 };
	size_t len;
	char *line;
	int r;

	CHECK(strcmp(ctl_errno_name(-EBUSY), "EBUSY") == 0);
	CHECK(strcmp(ctl_errno_name(ETIMEDOUT), "ETIMEDOUT") == 0);
	CHECK(strcmp(ctl_errno_name(-ENOENT), "ENOENT") == 0);
	CHECK(strcmp(ctl_errno_name(0), "EIO") == 0);
	CHECK(strcmp(ctl_errno_name(-99999), "EIO") == 0);

	/* dispatch: sync ok, with the command's fields and "ok" first */
	exec_ret = 0;
	exec_calls = 0;
	r = ctl_dispatch(&req, table, "{\"cmd\":\"a\"}", 11);
	CHECK_EQ(r, 0);
	CHECK_EQ(exec_calls, 1);
	line = ctl_reply_line(&req, r, &len);
	check_line(line, len, true, NULL);
	CHECK(strncmp(line, "{\"ok\":true,\"answer\":42}", 23) == 0);
	free(line);
	json_decref(req.args);
	json_decref(req.reply);

	/* a command's error with its message */
	memset(&req, 0, sizeof(req));
	exec_ret = -EBUSY;
	r = ctl_dispatch(&req, table, "{\"cmd\":\"a\"}", 11);
	CHECK_EQ(r, -EBUSY);
	line = ctl_reply_line(&req, r, &len);
	check_line(line, len, false, "EBUSY");
	CHECK(strstr(line, "fake failed") != NULL);
	free(line);
	json_decref(req.args);
	json_decref(req.reply);

	/* async passes through; an odd positive return is a bug: EIO */
	memset(&req, 0, sizeof(req));
	exec_ret = CTL_ASYNC;
	CHECK_EQ(ctl_dispatch(&req, table, "{\"cmd\":\"a\"}", 11), CTL_ASYNC);
	json_decref(req.args);
	memset(&req, 0, sizeof(req));
	exec_ret = 7;
	CHECK_EQ(ctl_dispatch(&req, table, "{\"cmd\":\"a\"}", 11), -EIO);
	json_decref(req.args);

	/* a bad request never reaches exec */
	memset(&req, 0, sizeof(req));
	exec_calls = 0;
	r = ctl_dispatch(&req, table, "{\"cmd\":\"a\",\"x\":1}", 17);
	CHECK_EQ(r, -EINVAL);
	CHECK_EQ(exec_calls, 0);
	line = ctl_reply_line(&req, r, &len);
	check_line(line, len, false, "EINVAL");
	free(line);

	/* an error without a message gets strerror's */
	memset(&req, 0, sizeof(req));
	line = ctl_reply_line(&req, -ENOENT, &len);
	check_line(line, len, false, "ENOENT");
	CHECK(strstr(line, "No such file") != NULL);
	free(line);

	/* a message that is not UTF-8 still makes valid JSON */
	line = ctl_error_line(-EINVAL, "bad \xff\xfe path \xc3", &len);
	check_line(line, len, false, "EINVAL");
	free(line);
	{
		json_t *s = ctl_json_string("/img/\xe9t\xe9");
		CHECK(json_is_string(s));
		CHECK(strcmp(json_string_value(s), "/img/?t?") == 0);
		json_decref(s);
		s = ctl_json_string("/img/\xc3\xa9");
		CHECK(strcmp(json_string_value(s), "/img/\xc3\xa9") == 0);
		json_decref(s);
	}
}

int main(void)
{
	log_init("test-ctl-parse", LOG_LVL_WARN, LOG_SINK_STDERR);
	test_good();
	test_malformed();
	test_nul_and_size();
	test_random();
	test_replies();
	return test_done("test-ctl-parse");
}
