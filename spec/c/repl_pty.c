/* Drives the `lattice` REPL through a pseudo-terminal, as someone at a
 * terminal would: Tab completion, Ctrl-C at the prompt and while code runs,
 * printed tables, multi-line input, Ctrl-D, and the history file in $HOME.
 *
 *   repl_pty path/to/lattice     (ctest: repl_pty, run from the source tree)
 *
 * Every wait for output has a deadline, so a hang fails within seconds and
 * says what it waited for. Keys that raise a signal (Ctrl-C) are sent only
 * once the output shows the REPL is where the test means it to be: the
 * terminal delivers SIGINT at once, ahead of keys still waiting to be read.
 * A failing run leaves its temporary $HOME for a look at the history file. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 5000

typedef struct repl {
  const char *name; /* of the session, for messages */
  pid_t pid;
  int fd;            /* the terminal's master side */
  size_t len, seen;  /* bytes read; bytes already matched */
  char out[1 << 16]; /* everything the REPL wrote */
} repl;

/* ---- talking to the REPL ---- */

static void print_escaped(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n')
      fputs("\\n\n", stderr);
    else if (c < 32 || c == 127)
      fprintf(stderr, "\\x%02x", c);
    else
      fputc(c, stderr);
  }
  fputc('\n', stderr);
}

static void fail(repl *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "repl_pty: %s: ", r->name);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n--- output after the last match ---\n");
  print_escaped(r->out + r->seen, r->len - r->seen);
  kill(r->pid, SIGKILL);
  exit(EXIT_FAILURE);
}

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* Reads what the REPL writes within ms; 0 once it has closed the terminal. */
static int read_some(repl *r, long ms) {
  struct pollfd p = {.fd = r->fd, .events = POLLIN};
  if (poll(&p, 1, (int)ms) <= 0) return 1;
  if (r->len == sizeof r->out - 1) fail(r, "more output than %zu bytes", sizeof r->out);
  ssize_t n = read(r->fd, r->out + r->len, sizeof r->out - 1 - r->len);
  if (n <= 0) return 0; /* EIO: the REPL's side is closed */
  r->len += (size_t)n;
  r->out[r->len] = '\0';
  return 1;
}

/* Waits until text appears after the last match, and moves past it. */
static void expect(repl *r, const char *text) {
  long deadline = now_ms() + WAIT_MS;
  for (;;) {
    const char *at = memmem(r->out + r->seen, r->len - r->seen, text, strlen(text));
    if (at) {
      r->seen = (size_t)(at - r->out) + strlen(text);
      return;
    }
    long left = deadline - now_ms();
    if (left <= 0) fail(r, "waited %d ms for \"%s\"", WAIT_MS, text);
    if (!read_some(r, left)) fail(r, "the REPL ended before \"%s\"", text);
  }
}

static void send(repl *r, const char *keys) {
  size_t n = strlen(keys);
  if (write(r->fd, keys, n) != (ssize_t)n) fail(r, "cannot write to the terminal");
}

/* Sends a line and waits for the line it prints and the next prompt. */
static void run(repl *r, const char *line, const char *printed) {
  send(r, line);
  send(r, "\r");
  expect(r, printed);
  expect(r, "> ");
}

static repl *start(const char *exe, const char *home, const char *name) {
  repl *r = calloc(1, sizeof *r);
  if (!r) exit(EXIT_FAILURE);
  r->name = name;
  struct winsize size = {.ws_row = 24, .ws_col = 100};
  r->pid = forkpty(&r->fd, NULL, NULL, &size);
  if (r->pid < 0) perror("repl_pty: forkpty"), exit(EXIT_FAILURE);
  if (r->pid == 0) {
    setenv("HOME", home, 1);
    setenv("TERM", "xterm", 1);
    setenv("INPUTRC", "/dev/null", 1); /* the tester's key bindings stay out */
    execl(exe, exe, (char *)NULL);
    perror(exe);
    _exit(127);
  }
  expect(r, "Ctrl-D leaves.");
  expect(r, "> ");
  return r;
}

/* Ctrl-D on an empty line: the REPL must end, with status 0. */
static void finish(repl *r) {
  send(r, "\x04");
  long deadline = now_ms() + WAIT_MS;
  while (read_some(r, deadline - now_ms()))
    if (now_ms() >= deadline) fail(r, "still running %d ms after Ctrl-D", WAIT_MS);
  const char *rest = r->out + r->seen;
  if (!strchr(rest, '\n') || strchr(rest, '\n') != strrchr(rest, '\n')) fail(r, "not one line ended after Ctrl-D");
  int status;
  waitpid(r->pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail(r, "ended with status %#x", status);
  close(r->fd);
}

static void refuse(repl *r, const char *text) {
  if (memmem(r->out, r->len, text, strlen(text))) fail(r, "wrote \"%s\"", text);
}

/* ---- the history file ---- */

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  static char text[1 << 20];
  size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  if (f) fclose(f);
  text[n] = '\0';
  return text;
}

/* Entries start with a "#<seconds>" line. */
static int count_entries(const char *text) {
  int n = 0;
  for (const char *line = text; line; line = strchr(line, '\n')) {
    if (line[0] == '\n') line++;
    if (line[0] == '#' && line[1] >= '0' && line[1] <= '9') n++;
  }
  return n;
}

static void write_fillers(const char *path, int n) {
  FILE *f = fopen(path, "w");
  if (!f) perror(path), exit(EXIT_FAILURE);
  for (int i = 1; i <= n; i++) fprintf(f, "#1700000000\nfiller_%d = %d\n", i, i);
  fclose(f);
}

static void check_file(const char *text, const char *part, int present) {
  if ((strstr(text, part) != NULL) != present) {
    fprintf(stderr, "repl_pty: the history file %s \"%s\"\n", present ? "lacks" : "holds", part);
    exit(EXIT_FAILURE);
  }
}

/* ---- the sessions ---- */

static void completes_names(repl *r) {
  run(r, "x = lattice.ones({2, 3})", "");
  run(r, "x:resh\t3, 2).shape", "{3, 2}");                            /* a method, then the line goes on */
  run(r, "lattice.ze\t({2}, 'int32')", "array([0, 0], dtype=int32)"); /* the common prefix */
  send(r, "lattice.random.\t\t"); /* lists the members, in columns sorted top to bottom */
  expect(r, "lattice.random.get_state(");
  expect(r, "lattice.random.normal(");
  expect(r, "lattice.random.permutation(");
  send(r, "\x03"); /* Ctrl-C drops the line */
  expect(r, "^C");
  expect(r, "> ");
  send(r, "READ\t"); /* no Lua name: a bell, not README.md */
  expect(r, "\a");
  send(r, "\x03");
  expect(r, "^C");
  expect(r, "> ");
  run(r, "x.shape", "{2, 3}"); /* the state survived */
}

static void prints_results(repl *r) {
  run(r, "{b = 'x', 2 * 1, a = 1}", "{2, a = 1, b = \"x\"}");
  run(r, "lattice.arange(4, 'int32'):reshape(2, 2):tolist()", "{{0, 1}, {2, 3}}");
  run(r, "lattice.zeros({0, 0})", "array([], shape={0, 0}, dtype=float32)");
  send(r, "function add(a, b)\r");
  expect(r, ">> ");
  send(r, "return a + b\r");
  expect(r, ">> ");
  run(r, "end", "");
  run(r, "add(20, 22)", "42\r\n");
  send(r, "function broken(\r"); /* Ctrl-C drops a whole incomplete statement */
  expect(r, ">> ");
  send(r, "\x03");
  expect(r, "^C");
  run(r, "type(broken)", "nil\r\n");
}

static void stops_running_code(repl *r) {
  send(r, "print('spin' .. 'ning') while true do end\r");
  expect(r, "spinning");
  send(r, "\x03");
  expect(r, "interrupted!");
  expect(r, "> ");
  run(r, "'state ' .. x.size", "state 6");
}

static void first_session(const char *exe, const char *home, const char *file) {
  write_fillers(file, 1200);
  repl *r = start(exe, home, "first session");
  completes_names(r);
  prints_results(r);
  stops_running_code(r);
  run(r, "marker = 40 + 2", "");
  finish(r);
  refuse(r, "README");
  free(r);
  const char *text = read_text(file);
  check_file(text, "\nx = lattice.ones({2, 3})\n", 1);
  check_file(text, "\nfunction add(a, b)\nreturn a + b\nend\n", 1);
  check_file(text, "\nfiller_200 = 200\n", 0); /* only the last 1000 entries are kept */
  check_file(text, "\nfiller_201 = 201\n", 1);
  check_file(text, "broken(", 0); /* what Ctrl-C dropped is not history */
  check_file(text, "lattice.random.", 0);
}

/* A new session recalls the last line of the first one with Ctrl-P. */
static void second_session(const char *exe, const char *home, const char *file) {
  repl *r = start(exe, home, "second session");
  send(r, "\x10");
  expect(r, "marker = 40 + 2");
  send(r, "\r");
  expect(r, "> ");
  run(r, "marker", "42\r\n");
  finish(r);
  free(r);
  const char *text = read_text(file);
  int entries = count_entries(text);
  if (entries != 1001) {
    fprintf(stderr, "repl_pty: the history file holds %d entries, not 1000 kept + 1 new\n", entries);
    exit(EXIT_FAILURE);
  }
}

/* A $HOME that cannot hold the file changes nothing a user sees. */
static void homeless_session(const char *exe) {
  repl *r = start(exe, "/nonexistent/lattice-home", "session without a home");
  run(r, "'no' .. 'home'", "nohome");
  finish(r);
  refuse(r, "history");
  free(r);
}

/* Piped input is a script, not someone typing: it leaves no history. */
static void piped_session(const char *exe, const char *home, const char *file) {
  char command[8192];
  snprintf(command, sizeof command, "echo 'piped = 1' | HOME='%s' '%s' -i >/dev/null", home, exe);
  if (system(command) != 0) fprintf(stderr, "repl_pty: %s failed\n", command), exit(EXIT_FAILURE);
  if (access(file, F_OK) == 0) fprintf(stderr, "repl_pty: piped input wrote %s\n", file), exit(EXIT_FAILURE);
}

int main(int argc, char **argv) {
  if (argc != 2) return fprintf(stderr, "usage: repl_pty path/to/lattice\n"), 2;
  char home[] = "/tmp/lattice-repl-XXXXXX";
  if (!mkdtemp(home)) return perror("repl_pty: mkdtemp"), 1;
  char file[sizeof home + 32];
  snprintf(file, sizeof file, "%s/.lattice_history", home);
  piped_session(argv[1], home, file);
  first_session(argv[1], home, file);
  second_session(argv[1], home, file);
  homeless_session(argv[1]);
  unlink(file);
  rmdir(home);
  puts("repl_pty: all sessions passed");
  return 0;
}
