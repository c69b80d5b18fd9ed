/* The `lattice` REPL: reads Lua (an expression prints its value, an
 * incomplete statement continues on the next line), runs it, and prints the
 * results through lattice.repl (lua/lattice/repl.lua). With readline it also
 * completes Lua names on Tab (completion.c) and keeps ~/.lattice_history.
 *
 * Ctrl-C at the prompt drops the line being typed (or the whole incomplete
 * statement) and prompts afresh; while code runs it stops it with an error.
 * Either way the state is kept. Ctrl-D on an empty line leaves. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>
#include "lattice/lua.h"
#include "host.h"

#ifdef LATTICE_HAVE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#ifndef LATTICE_VERSION
#define LATTICE_VERSION "0.1.0"
#endif

#define HISTORY_ENTRIES 1000

typedef struct session {
  lua_State *L;
  char history[4096]; /* the history file, "" for none */
} session;

typedef enum input { INPUT_LINE, INPUT_END, INPUT_CANCELLED } input;

/* ---- Ctrl-C at the prompt ---- */

/* Set by SIGINT while the prompt waits. A signal handler can reach nothing
 * but a static flag, hence this one. */
static volatile sig_atomic_t prompt_interrupted;

static void on_prompt_sigint(int sig) {
  (void)sig;
  prompt_interrupted = 1;
}

/* Without SA_RESTART, so that a read waiting for the line returns EINTR. */
static void catch_prompt_sigint(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_prompt_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}

/* ---- reading a line ---- */

#ifdef LATTICE_HAVE_READLINE
/* Ctrl-C: show ^C after what was typed, empty the line and answer Enter
 * (bound to accept-line in every keymap), so readline ends the line on the
 * screen and returns ""; read_line tells it from an empty line by the flag. */
static int cancel_line(void) {
  rl_point = rl_end;
  rl_redisplay();
  fputs("^C", rl_outstream);
  rl_replace_line("", 1);
  rl_point = rl_mark = 0;
  return '\n';
}

/* readline's key reader (rl_getc_function), made to notice Ctrl-C. SIGINT
 * stays blocked except inside pselect, so it cannot come between the test of
 * the flag and the wait for a key and be missed until the next key. */
static int read_key(FILE *in) {
  int fd = fileno(in);
  sigset_t sigint, unblocked;
  sigemptyset(&sigint);
  sigaddset(&sigint, SIGINT);
  for (;;) {
    sigprocmask(SIG_BLOCK, &sigint, &unblocked);
    int ready = 0;
    if (!prompt_interrupted) {
      fd_set fds;
      FD_ZERO(&fds);
      FD_SET(fd, &fds);
      ready = pselect(fd + 1, &fds, NULL, NULL, NULL, &unblocked);
    }
    sigprocmask(SIG_SETMASK, &unblocked, NULL);
    if (prompt_interrupted) return cancel_line();
    if (ready < 0 && errno == EINTR) continue; /* another signal, e.g. a resize */
    unsigned char c;
    ssize_t n = ready < 0 ? -1 : read(fd, &c, 1);
    if (n == 1) return c;
    if (n < 0 && errno == EINTR) continue;
    return EOF;
  }
}

/* Whether readline itself ended the line after Ctrl-D (8.2 does on a
 * terminal with bracketed paste on), so that the REPL adds no blank line. */
static int readline_ended_line(void) {
#if RL_READLINE_VERSION >= 0x0802
  const char *paste = rl_variable_value("enable-bracketed-paste");
  return rl_eof_found && isatty(fileno(rl_instream ? rl_instream : stdin)) && paste && strcmp(paste, "on") == 0;
#else
  return 0;
#endif
}

static input read_line(lua_State *L, const char *prompt) {
  prompt_interrupted = 0;
  char *line = readline(prompt);
  if (prompt_interrupted) {
    free(line);
    return INPUT_CANCELLED;
  }
  if (!line) return INPUT_END;
  lua_pushstring(L, line);
  free(line);
  return INPUT_LINE;
}
#else
static int readline_ended_line(void) { return 0; }

static input read_line(lua_State *L, const char *prompt) {
  char buf[4096];
  prompt_interrupted = 0;
  fputs(prompt, stdout);
  fflush(stdout);
  if (!fgets(buf, sizeof buf, stdin)) {
    if (!prompt_interrupted) return INPUT_END;
    clearerr(stdin);
    fputs("\n", stdout);
    return INPUT_CANCELLED;
  }
  size_t len = strlen(buf);
  if (len > 0 && buf[len - 1] == '\n') buf[--len] = '\0';
  lua_pushlstring(L, buf, len);
  return INPUT_LINE;
}
#endif

/* ---- history ---- */

#ifdef LATTICE_HAVE_READLINE
/* $HOME/.lattice_history into path, when a person types at a terminal
 * (piped input is no one's history); 0 for no file. */
static int history_path(char *path, size_t size) {
  const char *home = getenv("HOME");
  if (!home || !home[0] || !isatty(STDIN_FILENO)) return 0;
  int n = snprintf(path, size, "%s/.lattice_history", home);
  return n > 0 && (size_t)n < size;
}

/* Reads the history file, keeping its last HISTORY_ENTRIES entries. Entries
 * start with a "#<time>" line, so that a statement of several lines reads
 * back as one entry. Every failure leaves a REPL without a file. */
static void history_open(session *s) {
  history_comment_char = '#';
  history_write_timestamps = 1;
  if (!history_path(s->history, sizeof s->history)) s->history[0] = '\0';
  if (s->history[0]) read_history(s->history);
  int longer = history_length > HISTORY_ENTRIES;
  stifle_history(HISTORY_ENTRIES);
  if (longer) write_history(s->history); /* the file too keeps only the last entries */
}

/* Adds an input to the history and appends it to the file at once, so that
 * os.exit or a killed session loses nothing and two sessions both keep their
 * lines. Blank inputs and an input repeating the last one are not kept.
 * Failures to write are ignored: history is a convenience, never an error. */
static void history_add(const session *s, const char *code) {
  if (code[strspn(code, " \t\n")] == '\0') return;
  HIST_ENTRY *last = history_get(history_base + history_length - 1);
  if (last && strcmp(last->line, code) == 0) return;
  add_history(code);
  if (!s->history[0]) return;
  if (access(s->history, F_OK) == 0)
    append_history(1, s->history);
  else
    write_history(s->history); /* append_history cannot create the file */
}
#else
static void history_open(session *s) { s->history[0] = '\0'; }
static void history_add(const session *s, const char *code) { (void)s, (void)code; }
#endif

/* ---- compiling an input ---- */

/* True when the compile error on top says the input ended too soon. */
static int incomplete(lua_State *L, int status) {
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  static const char eof[] = "<eof>";
  if (status == LUA_ERRSYNTAX && len >= sizeof eof - 1 && strcmp(msg + len - (sizeof eof - 1), eof) == 0) {
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

/* Compiles the line on top as "return <line>" (so `x + 1` prints its value). */
static int try_return(const session *s) {
  lua_State *L = s->L;
  const char *code = lua_pushfstring(L, "return %s;", lua_tostring(L, -1));
  int status = luaL_loadbuffer(L, code, strlen(code), "=stdin");
  if (status == LUA_OK) {
    lua_remove(L, -2); /* the modified code */
    history_add(s, lua_tostring(L, -2));
  } else {
    lua_pop(L, 2);
  }
  return status;
}

/* Compiles the statement on top, reading more lines while it is incomplete.
 * Returns -1 when Ctrl-C dropped it. */
static int try_statement(const session *s) {
  lua_State *L = s->L;
  for (;;) {
    size_t len;
    const char *code = lua_tolstring(L, 1, &len);
    int status = luaL_loadbuffer(L, code, len, "=stdin");
    if (!incomplete(L, status)) {
      history_add(s, code);
      return status;
    }
    input in = read_line(L, ">> ");
    if (in == INPUT_CANCELLED) return -1;
    if (in == INPUT_END) {
      if (!readline_ended_line()) fputs("\n", stdout);
      lua_pushliteral(L, "stdin: incomplete statement at the end of input");
      return LUA_ERRSYNTAX;
    }
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* Reads one complete input and leaves its compiled chunk (or an error) on
 * top; INPUT_END at the end of input, INPUT_CANCELLED after Ctrl-C. */
static input load_input(const session *s, int *status) {
  lua_State *L = s->L;
  lua_settop(L, 0);
  input in = read_line(L, "> ");
  if (in != INPUT_LINE) return in;
  *status = try_return(s);
  if (*status != LUA_OK) *status = try_statement(s);
  if (*status == -1) return INPUT_CANCELLED;
  lua_remove(L, 1); /* the line */
  return INPUT_LINE;
}

/* ---- printing results ---- */

/* Loads lattice.repl into the registry; without it results go to print. */
static void load_printer(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lattice.repl");
  if (lt__host_report(L, lt__host_docall(L, 1, 1)) == LUA_OK) lua_setfield(L, LUA_REGISTRYINDEX, LT_HOST_REPL_MODULE);
}

/* Prints the values an input left on the stack, on one line, as
 * lattice.repl.format_results shows them. */
static void print_results(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0) return;
  luaL_checkstack(L, 3, "too many results to print");
  int pretty = lua_getfield(L, LUA_REGISTRYINDEX, LT_HOST_REPL_MODULE) == LUA_TTABLE;
  if (pretty)
    lua_getfield(L, -1, "format_results");
  else
    lua_getglobal(L, "print");
  lua_remove(L, -2);
  lua_insert(L, 1);
  int status = lt__host_docall(L, n, pretty ? 1 : 0);
  if (status == LUA_OK && pretty && lua_type(L, -1) == LUA_TSTRING) {
    fputs(lua_tostring(L, -1), stdout);
    fputs("\n", stdout);
    fflush(stdout);
  }
  if (status != LUA_OK) lt__host_report(L, status);
  lua_settop(L, 0);
}

#ifdef LATTICE_HAVE_READLINE
#define TAB_HINT "Tab completes names; "
#else
#define TAB_HINT ""
#endif

static void banner(lua_State *L) {
  lt_blas_info b = lt_blas_get_info();
  printf("lattice %s (%s), OpenBLAS %s (%s), %d threads\n", LATTICE_VERSION, LUA_RELEASE, b.core, b.parallel,
         lt_ctx_num_threads(lattice_lua_context(L)));
  printf("Type Lua; an expression prints its value.\n" TAB_HINT
         "Ctrl-C drops the line or stops the running code; Ctrl-D leaves.\n");
}

/* ---- the loop ---- */

static void begin(session *s) {
  load_printer(s->L);
  history_open(s);
#ifdef LATTICE_HAVE_READLINE
  rl_catch_signals = 0; /* SIGINT is ours (read_key); readline's would re-raise it */
  rl_getc_function = read_key;
  lt__host_completion_begin(s->L);
#endif
  catch_prompt_sigint();
}

static void end(session *s) {
  signal(SIGINT, SIG_DFL);
#ifdef LATTICE_HAVE_READLINE
  lt__host_completion_end();
#endif
  lua_pushnil(s->L);
  lua_setfield(s->L, LUA_REGISTRYINDEX, LT_HOST_REPL_MODULE);
}

void lt__host_repl(lua_State *L) {
  session s = {.L = L};
  banner(L);
  begin(&s);
  input in;
  int status = LUA_OK;
  while ((in = load_input(&s, &status)) != INPUT_END) {
    if (in == INPUT_CANCELLED) continue;
    if (status == LUA_OK) status = lt__host_docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK)
      print_results(L);
    else
      lt__host_report(L, status);
  }
  lua_settop(L, 0);
  end(&s);
  if (!readline_ended_line()) fputs("\n", stdout);
}
