/*
 * One-byte request/response over TCP, for the latency and setup benchmarks.
 * In C rather than Node: a Node round trip costs tens of microseconds of
 * its own (event loop, libuv, JS callbacks), as much as the network path
 * being measured, which would hide the differences between configurations.
 *
 *   rr server PORT [THREADS]
 *       Accepts connections on PORT (THREADS threads blocking in accept on
 *       one socket, default 4). On each connection: reads one byte, writes it
 *       back, and closes after answering if the byte was 'c' ("close"),
 *       else waits for the next byte.
 *
 *   rr latency HOST PORT COUNT [WARMUP]
 *       One connection; COUNT round trips of one byte each after WARMUP
 *       (default 1000) unmeasured ones. Prints one JSON line: percentiles of
 *       the round-trip time in microseconds.
 *
 *   rr setup HOST PORT SECONDS [CONCURRENCY]
 *       CONCURRENCY threads (default 1), each in a loop for SECONDS: connect,
 *       send 'c', read the answer, wait for the server's FIN, close (the
 *       server closes first, so TIME_WAIT stays on the server and the client's
 *       ports are free again at once). A connection not done within a second
 *       counts as an error. Prints one JSON line: connections
 *       completed per second, errors, and percentiles of one connection's
 *       duration (connect to close) in microseconds.
 *
 * Built by the benchmarks with `gcc -O2 -pthread`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double p) {
  if (n == 0) return 0;
  size_t i = (size_t)(p / 100.0 * n);
  if (i >= n) i = n - 1;
  return v[i];
}

static void print_percentiles(const double *v, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += v[i];
  printf("\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"min\":%.2f,\"max\":%.2f,\"mean\":%.2f",
         pct(v, n, 50), pct(v, n, 90), pct(v, n, 99), pct(v, n, 99.9), n ? v[0] : 0, n ? v[n - 1] : 0, n ? sum / n : 0);
}

static struct sockaddr_in target(const char *host, const char *port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(port));
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "rr: bad IPv4 address %s\n", host);
    exit(2);
  }
  return a;
}

static int readn(int fd, char *b, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, b + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return (int)r;
    got += (size_t)r;
  }
  return (int)got;
}

/* ---- server ------------------------------------------------------------ */

static int listener;

static void *serve(void *arg) {
  (void)arg;
  for (;;) {
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      perror("rr: accept");
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char c;
    while (readn(fd, &c, 1) == 1) {
      if (write(fd, &c, 1) != 1) break;
      if (c == 'c') break;
    }
    close(fd);
  }
  return NULL;
}

static int server(int argc, char **argv) {
  if (argc < 3) return 2;
  int threads = argc > 3 ? atoi(argv[3]) : 4;
  listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[2]));
  if (bind(listener, (struct sockaddr *)&a, sizeof a) < 0 || listen(listener, 4096) < 0) {
    perror("rr: bind/listen");
    return 1;
  }
  printf("listening\n");
  fflush(stdout);
  pthread_t t;
  for (int i = 1; i < threads; i++) pthread_create(&t, NULL, serve, NULL);
  serve(NULL);
  return 0;
}

/* ---- latency ----------------------------------------------------------- */

static int latency(int argc, char **argv) {
  if (argc < 5) return 2;
  struct sockaddr_in a = target(argv[2], argv[3]);
  long count = atol(argv[4]);
  long warmup = argc > 5 ? atol(argv[5]) : 1000;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    printf("{\"error\":\"connect: %s\"}\n", strerror(errno));
    return 1;
  }
  double *v = malloc(sizeof(double) * (size_t)count);
  char c = 'r';
  for (long i = -warmup; i < count; i++) {
    double t0 = now_us();
    if (write(fd, &c, 1) != 1 || readn(fd, &c, 1) != 1) {
      printf("{\"error\":\"round trip %ld: %s\"}\n", i, strerror(errno));
      return 1;
    }
    double t1 = now_us();
    if (i >= 0) v[i] = t1 - t0;
  }
  close(fd);
  qsort(v, (size_t)count, sizeof(double), cmp_double);
  printf("{\"count\":%ld,", count);
  print_percentiles(v, (size_t)count);
  printf("}\n");
  return 0;
}

/* ---- setup ------------------------------------------------------------- */

struct worker {
  pthread_t thread;
  struct sockaddr_in addr;
  double deadline;
  double *samples;
  size_t n, cap;
  long errors;
  char last_error[96];
};

static void *setup_loop(void *arg) {
  struct worker *w = arg;
  while (now_us() < w->deadline) {
    double t0 = now_us();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* a connection that does not complete within a second counts as failed (and the run ends on time) */
    struct timeval tmo = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof tmo);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof tmo);
    char c = 'c';
    int ok = connect(fd, (struct sockaddr *)&w->addr, sizeof w->addr) == 0 && write(fd, &c, 1) == 1 && readn(fd, &c, 1) == 1 &&
             readn(fd, &c, 1) == 0; /* the server's FIN */
    if (!ok) snprintf(w->last_error, sizeof w->last_error, "%s", strerror(errno));
    close(fd);
    if (!ok) {
      w->errors++;
      continue;
    }
    if (w->n == w->cap) {
      w->cap = w->cap ? w->cap * 2 : 4096;
      w->samples = realloc(w->samples, sizeof(double) * w->cap);
    }
    w->samples[w->n++] = now_us() - t0;
  }
  return NULL;
}

static int setup(int argc, char **argv) {
  if (argc < 5) return 2;
  struct sockaddr_in a = target(argv[2], argv[3]);
  double seconds = atof(argv[4]);
  int conc = argc > 5 ? atoi(argv[5]) : 1;
  struct worker *ws = calloc((size_t)conc, sizeof *ws);
  double t0 = now_us();
  for (int i = 0; i < conc; i++) {
    ws[i].addr = a;
    ws[i].deadline = t0 + seconds * 1e6;
    pthread_create(&ws[i].thread, NULL, setup_loop, &ws[i]);
  }
  size_t total = 0;
  long errors = 0;
  const char *last_error = "";
  for (int i = 0; i < conc; i++) {
    pthread_join(ws[i].thread, NULL);
    total += ws[i].n;
    errors += ws[i].errors;
    if (ws[i].errors) last_error = ws[i].last_error;
  }
  double elapsed = (now_us() - t0) / 1e6;
  double *all = malloc(sizeof(double) * (total ? total : 1));
  size_t k = 0;
  for (int i = 0; i < conc; i++) {
    memcpy(all + k, ws[i].samples, sizeof(double) * ws[i].n);
    k += ws[i].n;
  }
  qsort(all, total, sizeof(double), cmp_double);
  printf("{\"connections\":%zu,\"seconds\":%.3f,\"perSecond\":%.1f,\"concurrency\":%d,\"errors\":%ld,\"lastError\":\"%s\",", total, elapsed,
         total / elapsed, conc, errors, last_error);
  print_percentiles(all, total);
  printf("}\n");
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  int r = 2;
  if (argc > 1 && strcmp(argv[1], "server") == 0) r = server(argc, argv);
  else if (argc > 1 && strcmp(argv[1], "latency") == 0) r = latency(argc, argv);
  else if (argc > 1 && strcmp(argv[1], "setup") == 0) r = setup(argc, argv);
  if (r == 2) fprintf(stderr, "usage: rr server PORT [THREADS] | rr latency HOST PORT COUNT [WARMUP] | rr setup HOST PORT SECONDS [CONCURRENCY]\n");
  return r;
}
