/*
 * cload: a lean Gearman load generator for bench/run.sh.
 *
 * It runs the in-memory scenarios (submit-bg, drain, roundtrip,
 * idle-workers) with one thread and one blocking socket per connection;
 * bench/loadgen (Go) runs the durable ones, for which it reads the store's
 * counters. On a 2-core machine the load generator shares the CPUs with
 * the server it measures; a Go client spends about as much CPU per job as
 * the server does (netpoll, EAGAIN reads, scheduler), which compresses the
 * difference between two servers. A blocking C client costs a fraction of
 * that, so the figures show the servers: it reads replies through a buffer
 * (one read per burst), its main thread sleeps while the workers run, and
 * its threads run SCHED_BATCH (see main). Output is one line of key=value
 * pairs, the same as bench/loadgen's.
 *
 * Build: cc -O2 -pthread -o cload cload.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum {
	CAN_DO = 1, PRE_SLEEP = 4, NOOP = 6, SUBMIT_JOB = 7, JOB_CREATED = 8,
	NO_JOB = 10, WORK_COMPLETE = 13, SUBMIT_JOB_BG = 18, GRAB_JOB_UNIQ = 30,
	JOB_ASSIGN_UNIQ = 31,
};

static const char *host = "127.0.0.1";
static int port = 4730;
static const char *scenario = "submit-bg";
static const char *label = "";
static int clients = 4, workers = 4, jobs = 20000, idle = 500, functions = 50, payload_len = 100;
static double duration = 60;
static const char *sched = "batch";
static char payload[65536];

static atomic_long done_jobs, noops, sleeps, assigned;
/* drain_end: when the worker that took the last queued job took it, so the
 * main thread can check on the run rarely (it shares the CPUs). */
static long drain_target;
static _Atomic double drain_end;
static double deadline;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "cload: %s against %s:%d: %s\n", what, host, port, strerror(errno));
	exit(1);
}

static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, host, &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		die("connect");
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* A stalled server fails the run instead of hanging it. */
	struct timeval tv = {.tv_sec = 30};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

/* A connection with a write buffer, so pipelined requests go in one write,
 * and a read buffer, so a burst of replies costs one read, not two per
 * packet (header, then body). */
struct conn {
	int fd;
	char out[1 << 16];
	size_t n;
	char *buf;           /* received bytes: buf[start:end] not yet parsed */
	size_t start, end, cap;
	char *in;            /* the payload of the packet next() returned */
};

static void conn_init(struct conn *c, int fd)
{
	memset(c, 0, sizeof *c);
	c->fd = fd;
	c->cap = 1 << 16;
	c->buf = malloc(c->cap);
}

/* put buffers one request packet: args joined by NULs. */
static void put(struct conn *c, uint32_t type, int nargs, const char **args, const size_t *lens)
{
	size_t size = 0;
	for (int i = 0; i < nargs; i++)
		size += lens[i] + (i > 0);
	if (c->n + 12 + size > sizeof c->out) {
		fprintf(stderr, "cload: request too large\n");
		exit(1);
	}
	char *p = c->out + c->n;
	memcpy(p, "\0REQ", 4);
	uint32_t t = htonl(type), s = htonl((uint32_t)size);
	memcpy(p + 4, &t, 4);
	memcpy(p + 8, &s, 4);
	p += 12;
	for (int i = 0; i < nargs; i++) {
		if (i > 0)
			*p++ = 0;
		memcpy(p, args[i], lens[i]);
		p += lens[i];
	}
	c->n = p - c->out;
}

static void put0(struct conn *c, uint32_t type) { put(c, type, 0, NULL, NULL); }

static int flush(struct conn *c)
{
	size_t off = 0;
	while (off < c->n) {
		ssize_t w = write(c->fd, c->out + off, c->n - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += w;
	}
	c->n = 0;
	return 0;
}

/* fill reads until buf holds at least n unparsed bytes; -1 on EOF or error. */
static int fill(struct conn *c, size_t n)
{
	if (c->end - c->start >= n)
		return 0;
	if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	if (n > c->cap) {
		c->cap = n;
		c->buf = realloc(c->buf, c->cap);
	}
	while (c->end < n) {
		ssize_t r = read(c->fd, c->buf + c->end, c->cap - c->end);
		if (r == 0)
			return -1;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c->end += r;
	}
	return 0;
}

/* next parses one response packet, reading only when the buffer has no
 * complete one; returns its type, or -1. The payload is at c->in (size
 * *len) until the next call. */
static int next(struct conn *c, size_t *len)
{
	if (fill(c, 12) < 0)
		return -1;
	uint32_t t, s;
	memcpy(&t, c->buf + c->start + 4, 4);
	memcpy(&s, c->buf + c->start + 8, 4);
	t = ntohl(t);
	s = ntohl(s);
	if (fill(c, 12 + (size_t)s) < 0)
		return -1;
	c->in = c->buf + c->start + 12;
	c->start += 12 + s;
	*len = s;
	return (int)t;
}

/* expect reads until a packet of type want (others are errors). */
static void expect(struct conn *c, int want)
{
	size_t len;
	int t = next(c, &len);
	if (t != want) {
		fprintf(stderr, "cload: got packet type %d, want %d\n", t, want);
		exit(1);
	}
}

/* ---- workers ---------------------------------------------------------- */

struct worker {
	pthread_t th;
	struct conn c;
	char fn[64];
};

/* A well-mannered libgearman-style worker: GRAB_JOB_UNIQ; PRE_SLEEP on
 * NO_JOB; grab again on NOOP; a job is completed at once and the next grab
 * is pipelined behind it. */
static void *work(void *arg)
{
	struct worker *w = arg;
	struct conn *c = &w->c;
	const char *a[1] = {w->fn};
	size_t l[1] = {strlen(w->fn)};
	put(c, CAN_DO, 1, a, l);
	put0(c, GRAB_JOB_UNIQ);
	if (flush(c) < 0)
		return NULL;
	int slept = 0;
	for (;;) {
		size_t len;
		int t = next(c, &len);
		if (t < 0)
			return NULL; /* closed at the end of the run */
		switch (t) {
		case JOB_ASSIGN_UNIQ: {
			size_t hl = strnlen(c->in, len);
			char handle[128];
			memcpy(handle, c->in, hl < 127 ? hl : 127);
			handle[hl < 127 ? hl : 127] = 0;
			const char *args[2] = {handle, "ok"};
			size_t lens[2] = {strlen(handle), 2};
			put(c, WORK_COMPLETE, 2, args, lens);
			put0(c, GRAB_JOB_UNIQ);
			if (atomic_fetch_add(&assigned, 1) + 1 == drain_target)
				atomic_store(&drain_end, now());
			break;
		}
		case NO_JOB:
			put0(c, PRE_SLEEP);
			if (!slept) {
				slept = 1;
				atomic_fetch_add(&sleeps, 1);
			}
			break;
		case NOOP:
			atomic_fetch_add(&noops, 1);
			put0(c, GRAB_JOB_UNIQ);
			break;
		default:
			fprintf(stderr, "cload: worker got packet type %d\n", t);
			exit(1);
		}
		if (flush(c) < 0)
			return NULL;
	}
}

static struct worker *start_workers(int n, int nfn, const char *prefix)
{
	struct worker *ws = calloc(n, sizeof *ws);
	for (int i = 0; i < n; i++) {
		conn_init(&ws[i].c, dial());
		if (nfn > 1)
			snprintf(ws[i].fn, sizeof ws[i].fn, "%s-%d", prefix, i % nfn);
		else
			snprintf(ws[i].fn, sizeof ws[i].fn, "%s", prefix);
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setstacksize(&at, 256 << 10);
		pthread_create(&ws[i].th, &at, work, &ws[i]);
	}
	return ws;
}

static void stop_workers(struct worker *ws, int n)
{
	for (int i = 0; i < n; i++)
		shutdown(ws[i].c.fd, SHUT_RDWR);
	for (int i = 0; i < n; i++) {
		pthread_join(ws[i].th, NULL);
		close(ws[i].c.fd);
	}
}

/* ---- clients ---------------------------------------------------------- */

struct client {
	pthread_t th;
	int k, n;
	int foreground;
	int nfn;
	const char *prefix;
	double *lat;
	int nlat;
};

static void *submit_loop(void *arg)
{
	struct client *cl = arg;
	struct conn c;
	conn_init(&c, dial());
	char fn[64], uniq[64];
	cl->lat = malloc(sizeof(double) * (cl->n + 1));
	for (int i = 0; i < cl->n && now() < deadline; i++) {
		if (cl->nfn > 1)
			snprintf(fn, sizeof fn, "%s-%d", cl->prefix, (cl->k + i * clients) % cl->nfn);
		else
			snprintf(fn, sizeof fn, "%s", cl->prefix);
		snprintf(uniq, sizeof uniq, "%s-%d-%d", cl->prefix, cl->k, i);
		const char *args[3] = {fn, uniq, payload};
		size_t lens[3] = {strlen(fn), strlen(uniq), (size_t)payload_len};
		double t0 = now();
		put(&c, cl->foreground ? SUBMIT_JOB : SUBMIT_JOB_BG, 3, args, lens);
		if (flush(&c) < 0)
			die("write");
		expect(&c, JOB_CREATED);
		if (cl->foreground) {
			expect(&c, WORK_COMPLETE);
			cl->lat[cl->nlat++] = now() - t0;
		}
		atomic_fetch_add(&done_jobs, 1);
	}
	close(c.fd);
	return NULL;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* run_clients runs the clients and returns the elapsed seconds; with
 * foreground jobs it prints the latency percentiles into stats. */
static double run_clients(int foreground, int nfn, const char *prefix, char *stats, size_t statsz)
{
	struct client *cs = calloc(clients, sizeof *cs);
	double start = now();
	deadline = start + duration;
	for (int k = 0; k < clients; k++) {
		cs[k] = (struct client){.k = k, .n = jobs / clients + (k < jobs % clients), .foreground = foreground, .nfn = nfn, .prefix = prefix};
		pthread_create(&cs[k].th, NULL, submit_loop, &cs[k]);
	}
	for (int k = 0; k < clients; k++)
		pthread_join(cs[k].th, NULL);
	double elapsed = now() - start;
	stats[0] = 0;
	if (foreground) {
		int n = 0;
		for (int k = 0; k < clients; k++)
			n += cs[k].nlat;
		double *all = malloc(sizeof(double) * (n + 1));
		n = 0;
		for (int k = 0; k < clients; k++)
			for (int i = 0; i < cs[k].nlat; i++)
				all[n++] = cs[k].lat[i];
		qsort(all, n, sizeof *all, cmpd);
		if (n > 0)
			snprintf(stats, statsz, " p50_ms=%.3f p99_ms=%.3f", all[(int)(0.50 * (n - 1))] * 1e3, all[(int)(0.99 * (n - 1))] * 1e3);
	}
	return elapsed;
}

/* preload submits n background jobs pipelined (a window of 1000) on one
 * connection, and waits for every JOB_CREATED. */
static void preload(const char *fn, int n)
{
	struct conn c;
	conn_init(&c, dial());
	int sent = 0, acked = 0;
	char uniq[64];
	while (acked < n) {
		while (sent < n && sent - acked < 1000 && c.n + 200 + payload_len < sizeof c.out) {
			snprintf(uniq, sizeof uniq, "drain-%d", sent);
			const char *args[3] = {fn, uniq, payload};
			size_t lens[3] = {strlen(fn), strlen(uniq), (size_t)payload_len};
			put(&c, SUBMIT_JOB_BG, 3, args, lens);
			sent++;
		}
		if (flush(&c) < 0)
			die("preload write");
		expect(&c, JOB_CREATED);
		acked++;
	}
	close(c.fd);
}

static void usage(void)
{
	fprintf(stderr, "usage: cload --server HOST:PORT --scenario submit-bg|drain|roundtrip|idle-workers\n"
			"             [--clients N] [--workers N] [--jobs N] [--idle N] [--functions N]\n"
			"             [--payload BYTES] [--duration SECONDS] [--label TEXT]\n"
			"             [--sched batch|other]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	/* Workers are shut down mid-write at the end of a run. */
	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		const char *k = argv[i];
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (!strcmp(k, "--server")) {
			static char h[256];
			const char *colon = strrchr(v, ':');
			if (!colon || colon - v >= (int)sizeof h)
				usage();
			memcpy(h, v, colon - v);
			h[colon - v] = 0;
			host = h;
			port = atoi(colon + 1);
		} else if (!strcmp(k, "--scenario")) scenario = v;
		else if (!strcmp(k, "--clients")) clients = atoi(v);
		else if (!strcmp(k, "--workers")) workers = atoi(v);
		else if (!strcmp(k, "--jobs")) jobs = atoi(v);
		else if (!strcmp(k, "--idle")) idle = atoi(v);
		else if (!strcmp(k, "--functions")) functions = atoi(v);
		else if (!strcmp(k, "--payload")) payload_len = atoi(v);
		else if (!strcmp(k, "--duration")) duration = atof(v);
		else if (!strcmp(k, "--label")) label = v;
		else if (!strcmp(k, "--sched")) sched = v;
		else usage();
	}
	/* The generator shares the CPUs with the server it measures, and its
	 * threads wake on every reply. Under the default policy a woken thread
	 * may preempt the server in the middle of its batch of connections,
	 * which clients on other machines cannot do. SCHED_BATCH (inherited by
	 * every thread) keeps the fair share of CPU but not that preemption.
	 * Both servers get the same; --sched other turns it off. */
	if (!strcmp(sched, "batch")) {
		struct sched_param sp = {0};
		if (sched_setscheduler(0, SCHED_BATCH, &sp) < 0)
			die("sched_setscheduler SCHED_BATCH");
	} else if (strcmp(sched, "other"))
		usage();
	if (strcmp(host, "127.0.0.1") && strcmp(host, "localhost")) {
		fprintf(stderr, "cload: only loopback targets are allowed\n");
		return 2;
	}
	if (payload_len < 0 || payload_len > (int)sizeof payload - 1 || clients < 1 || workers < 1 || jobs < 1)
		usage();
	memset(payload, 'p', payload_len);
	char stats[128] = "", extra[256] = "";
	double elapsed;
	long n;

	if (!strcmp(scenario, "submit-bg")) {
		elapsed = run_clients(0, 1, "cload-bg", stats, sizeof stats);
		n = atomic_load(&done_jobs);
	} else if (!strcmp(scenario, "drain")) {
		preload("cload-drain", jobs);
		drain_target = jobs;
		double start = now();
		struct worker *ws = start_workers(workers, 1, "cload-drain");
		while (atomic_load(&drain_end) == 0 && now() - start < duration)
			usleep(10000);
		double end = atomic_load(&drain_end);
		elapsed = (end > 0 ? end : now()) - start;
		n = atomic_load(&assigned);
		stop_workers(ws, workers);
		snprintf(extra, sizeof extra, " workers=%d", workers);
	} else if (!strcmp(scenario, "roundtrip")) {
		struct worker *ws = start_workers(workers, 1, "cload-rt");
		elapsed = run_clients(1, 1, "cload-rt", stats, sizeof stats);
		n = atomic_load(&done_jobs);
		stop_workers(ws, workers);
		snprintf(extra, sizeof extra, " clients=%d workers=%d", clients, workers);
	} else if (!strcmp(scenario, "idle-workers")) {
		struct worker *ws = start_workers(idle, functions, "cload-idle");
		double until = now() + 30;
		while (atomic_load(&sleeps) < idle && now() < until)
			usleep(1000);
		atomic_store(&noops, 0);
		elapsed = run_clients(1, functions, "cload-idle", stats, sizeof stats);
		n = atomic_load(&done_jobs);
		long nn = atomic_load(&noops);
		stop_workers(ws, idle);
		snprintf(extra, sizeof extra, " noops=%ld noops_per_job=%.2f idle_workers=%d functions=%d", nn, (double)nn / (n ? n : 1), idle, functions);
	} else {
		usage();
		return 2;
	}
	printf("scenario=%s server=%s:%d%s%s jobs=%ld elapsed=%.3fs jobs_per_s=%.0f%s%s\n", scenario, host, port,
	       *label ? " label=" : "", label, n, elapsed, n / elapsed, stats, extra);
	return 0;
}
