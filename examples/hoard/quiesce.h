/* Fork safety for a heap whose locks cannot all be named: quiescence.
 * (Written for alloc8; C or C++, GCC/Clang builtins, Linux.)
 *
 * A heap is fork-safe when no lock of it is held at fork(). Hoard's locks
 * are private members of half a dozen classes, one per superblock among
 * them, so an xxmalloc_lock that takes them all cannot be written. Instead:
 * every call into the heap marks its thread as inside (a counter in the
 * thread's own slot, written with plain stores); quiesce_stop(), called from
 * xxmalloc_lock before fork(), stops new calls and waits until no thread is
 * inside, so no heap lock is held; quiesce_resume() (xxmalloc_unlock, in the
 * parent and the child) lets them in again.
 *
 * The entry's store must be visible before it reads the stop flag. Instead
 * of a fence on every call, the stopping thread issues
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full fence on
 * every thread of the process at once (the asymmetric fence of userspace
 * RCU): either a thread's load saw the flag, or its store was visible to the
 * stopper's scan. Where membarrier is absent (old kernel, seccomp), every
 * entry fences instead.
 *
 * Slots are claimed by threads on their first call and given back by
 * quiesce_thread_exit() (xxthread_cleanup). A thread without a slot (all
 * taken) counts itself in one shared counter with atomic instructions:
 * slower, still exact. */
#ifndef ALLOC8_QUIESCE_H
#define ALLOC8_QUIESCE_H

#include <sched.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef QUIESCE_SLOTS
#define QUIESCE_SLOTS 1024
#endif

/* One cache line per slot: a thread writes only its own line. */
struct quiesce_slot {
  long inside;  /* this thread's calls into the heap now running (nesting: a signal handler) */
  int claimed;
  char pad[64 - sizeof(long) - sizeof(int)];
};

static struct quiesce_slot quiesce_slots[QUIESCE_SLOTS] __attribute__((aligned(64)));
static int quiesce_high;               /* slots claimed so far: the stopper scans these */
static long quiesce_unslotted_inside;  /* calls of threads without a slot (atomic) */
/* What sends an entry off the fast path, in one word so the fast path
 * reads one: the heap is stopped for a fork, or every entry fences. */
enum { QUIESCE_STOPPED = 1, QUIESCE_FENCED = 2 };
static int quiesce_gate;
static int quiesce_ready;              /* membarrier decided */
static __thread struct quiesce_slot *quiesce_my_slot __attribute__((tls_model("initial-exec")));
static __thread int quiesce_i_stopped __attribute__((tls_model("initial-exec")));

enum { QUIESCE_QUERY = 0, QUIESCE_PRIVATE_EXPEDITED = 1 << 3, QUIESCE_REGISTER_PRIVATE_EXPEDITED = 1 << 4 };

/* membarrier(cmd, 0) as a raw system call where the architecture is known:
 * the constructor runs in every process the heap is loaded into, and a call
 * through libc's syscall() is one a program could intercept. */
static long quiesce_membarrier(long cmd) {
#if defined(__x86_64__)
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_membarrier), "D"(cmd), "S"(0L) : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = SYS_membarrier;
  register long x0 __asm__("x0") = cmd;
  register long x1 __asm__("x1") = 0;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1) : "memory");
  return x0;
#else
  return syscall(SYS_membarrier, cmd, 0);
#endif
}

/* Decides once whether membarrier gives the stopper its fence. */
static void quiesce_setup(void) {
  if (__atomic_load_n(&quiesce_ready, __ATOMIC_ACQUIRE)) {
    return;
  }
#ifdef QUIESCE_NO_MEMBARRIER /* tests: the fallback */
  long cmds = -1;
#else
  long cmds = quiesce_membarrier(QUIESCE_QUERY);
#endif
  int ok = cmds > 0 && (cmds & QUIESCE_PRIVATE_EXPEDITED) &&
           quiesce_membarrier(QUIESCE_REGISTER_PRIVATE_EXPEDITED) == 0;
  if (!ok) {
    __atomic_fetch_or(&quiesce_gate, QUIESCE_FENCED, __ATOMIC_SEQ_CST);
  }
  __atomic_store_n(&quiesce_ready, 1, __ATOMIC_RELEASE);
}

/* At load, while the process has one thread: a thread that enters after a
 * failed registration fences from its first call. */
__attribute__((constructor)) static void quiesce_at_load(void) { quiesce_setup(); }

static struct quiesce_slot *quiesce_claim(void) {
  for (int i = 0; i < QUIESCE_SLOTS; i++) {
    int free_slot = 0;
    if (__atomic_load_n(&quiesce_slots[i].claimed, __ATOMIC_RELAXED) == 0 &&
        __atomic_compare_exchange_n(&quiesce_slots[i].claimed, &free_slot, 1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED)) {
      int high = __atomic_load_n(&quiesce_high, __ATOMIC_RELAXED);
      while (high < i + 1 &&
             !__atomic_compare_exchange_n(&quiesce_high, &high, i + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
      }
      quiesce_my_slot = &quiesce_slots[i];
      return quiesce_my_slot;
    }
  }
  return NULL;
}

static int quiesce_is_stopped(int order) { return __atomic_load_n(&quiesce_gate, order) & QUIESCE_STOPPED; }

/* The thread's own counter moves by d. Only this thread writes it; the
 * stopper reads it. One instruction on x86-64, and a compiler barrier both
 * ways (a leave's store is a release: x86 stores are). */
static inline __attribute__((always_inline)) void quiesce_count(long *inside, long d) {
#if defined(__x86_64__)
  __asm__ volatile("addq %1, %0" : "+m"(*inside) : "er"(d) : "memory");
#else
  __atomic_store_n(inside, *inside + d, __ATOMIC_RELEASE);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

static void quiesce_wait_resumed(void) {
  while (quiesce_is_stopped(__ATOMIC_ACQUIRE)) {
    sched_yield();
  }
}

/* A call of a thread without a slot: the atomic add is the fence. */
static __attribute__((noinline)) void quiesce_enter_unslotted(void) {
  for (;;) {
    __atomic_add_fetch(&quiesce_unslotted_inside, 1, __ATOMIC_SEQ_CST);
    if (!quiesce_is_stopped(__ATOMIC_SEQ_CST) || quiesce_i_stopped) {
      return;
    }
    __atomic_sub_fetch(&quiesce_unslotted_inside, 1, __ATOMIC_RELEASE);
    quiesce_wait_resumed();
  }
}

/* Entry found the heap stopped for a fork (or fences, without membarrier). */
static __attribute__((noinline)) void quiesce_enter_slow(struct quiesce_slot *s) {
  for (;;) {
    if (__atomic_load_n(&quiesce_gate, __ATOMIC_RELAXED) & QUIESCE_FENCED) {
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
    /* Already inside (a nested call), or the stopper itself: go on. */
    if (!quiesce_is_stopped(__ATOMIC_RELAXED) || s->inside > 1 || quiesce_i_stopped) {
      return;
    }
    quiesce_count(&s->inside, -1);
    quiesce_wait_resumed();
    quiesce_count(&s->inside, 1);
  }
}

/* Every call into the heap: quiesce_enter() before, quiesce_leave() after,
 * with the slot it returned. */
static inline __attribute__((always_inline)) struct quiesce_slot *quiesce_enter(void) {
  struct quiesce_slot *s = quiesce_my_slot;
  if (__builtin_expect(s == NULL, 0)) {
    s = quiesce_claim();
    if (s == NULL) {
      quiesce_enter_unslotted();
      return NULL;
    }
  }
  /* Only the compiler is fenced here: the stopper's membarrier fences the CPU. */
  quiesce_count(&s->inside, 1);
  if (__builtin_expect(__atomic_load_n(&quiesce_gate, __ATOMIC_RELAXED) != 0, 0)) {
    quiesce_enter_slow(s);
  }
  return s;
}

static inline __attribute__((always_inline)) void quiesce_leave(struct quiesce_slot *s) {
  if (__builtin_expect(s == NULL, 0)) {
    __atomic_sub_fetch(&quiesce_unslotted_inside, 1, __ATOMIC_RELEASE);
    return;
  }
  quiesce_count(&s->inside, -1);
}

/* The thread ends: its slot goes back (it takes one again if it calls later). */
static void quiesce_thread_exit(void) {
  struct quiesce_slot *s = quiesce_my_slot;
  if (s != NULL && s->inside == 0) {
    quiesce_my_slot = NULL;
    __atomic_store_n(&s->claimed, 0, __ATOMIC_RELEASE);
  }
}

/* Before fork(): no new call gets in, and every call inside has left. */
static void quiesce_stop(void) {
  quiesce_setup();
  while (__atomic_fetch_or(&quiesce_gate, QUIESCE_STOPPED, __ATOMIC_SEQ_CST) & QUIESCE_STOPPED) {
    /* Another thread is forking: wait for its resume. */
    quiesce_wait_resumed();
  }
  quiesce_i_stopped = 1;
  if (!(__atomic_load_n(&quiesce_gate, __ATOMIC_RELAXED) & QUIESCE_FENCED)) {
    quiesce_membarrier(QUIESCE_PRIVATE_EXPEDITED);
  }
  struct quiesce_slot *mine = quiesce_my_slot;
  int high = __atomic_load_n(&quiesce_high, __ATOMIC_SEQ_CST);
  for (int i = 0; i < high; i++) {
    if (&quiesce_slots[i] == mine) {
      continue;
    }
    while (__atomic_load_n(&quiesce_slots[i].inside, __ATOMIC_ACQUIRE) != 0) {
      sched_yield();
    }
  }
  while (__atomic_load_n(&quiesce_unslotted_inside, __ATOMIC_ACQUIRE) != 0) {
    sched_yield();
  }
}

/* After fork(), in the parent and in the child. */
static void quiesce_resume(void) {
  quiesce_i_stopped = 0;
  __atomic_fetch_and(&quiesce_gate, ~QUIESCE_STOPPED, __ATOMIC_RELEASE);
}

#endif
