/* Use after free decided by which thread takes a mutex first. The finisher
 * frees the task, assuming the worker has already run it. When the finisher
 * wins the lock, the worker then calls through the freed task's function
 * pointer (glibc's free list link is there now: SIGSEGV in the normal build);
 * ASan on replay, held to the recorded lock order, reports the read after
 * free. The free counter is also updated outside the lock: a data race that
 * TSan reports on the same replay. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct task {
  void (*done)(struct task *);
  char name[24];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct task *task;
static long frees;

static void report(struct task *t) { printf("task %s done\n", t->name); }

static void *finisher(void *arg) {
  (void)arg;
#ifdef PECKER_SLOW_FINISHER
  // A build where the finisher would lose every race (replay must not care).
  usleep(100000);
#endif
  pthread_mutex_lock(&lock);
  free(task);
  pthread_mutex_unlock(&lock);
  frees++; // RACE
  return NULL;
}

static void *worker(void *arg) {
#ifdef PECKER_SLOW_WORKER
  usleep(100000);
#endif
  // About as long as starting the other thread takes: either may win.
  for (volatile long spin = 0; spin < (long)arg; spin++) {
  }
  pthread_mutex_lock(&lock);
  task->done(task); // BUG
  pthread_mutex_unlock(&lock);
  printf("frees so far: %ld\n", frees); // RACE
  return NULL;
}

int main(int argc, char **argv) {
  long spin = argc > 1 ? atol(argv[1]) : 60000;
  task = malloc(sizeof *task);
  task->done = report;
  strcpy(task->name, "upload");
  pthread_t a, b;
  pthread_create(&a, NULL, worker, (void *)spin);
  pthread_create(&b, NULL, finisher, NULL);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  return 0;
}
