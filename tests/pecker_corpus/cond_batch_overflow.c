/* Heap overflow decided by thread timing around a condition variable and a
 * rwlock. A producer queues items; the consumer wakes on a condition and
 * takes everything queued so far into a batch buffer sized by the current
 * configuration; a tuner thread shrinks that size (under a rwlock). When the
 * consumer wakes late, after the tuner ran, its batch holds more items than
 * the buffer: how many items wait at each wakeup, and which size is in force,
 * are the recorded order of lock, wait and signal operations. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define ITEMS 48

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static pthread_rwlock_t config_lock = PTHREAD_RWLOCK_INITIALIZER;
static int queue[ITEMS];
static int queued, taken, finished;
static int capacity = ITEMS;

static void *producer(void *arg) {
  (void)arg;
  for (int i = 0; i < ITEMS; i++) {
    pthread_mutex_lock(&lock);
    queue[queued++] = i;
    pthread_cond_signal(&ready);
    pthread_mutex_unlock(&lock);
    for (volatile int spin = 0; spin < 2000; spin++) {
    }
  }
  pthread_mutex_lock(&lock);
  finished = 1;
  pthread_cond_broadcast(&ready);
  pthread_mutex_unlock(&lock);
  return NULL;
}

static void *tuner(void *arg) {
  for (volatile long spin = 0; spin < (long)arg; spin++) {
  }
  pthread_rwlock_wrlock(&config_lock);
  capacity = 4;
  pthread_rwlock_unlock(&config_lock);
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  int largest = 0;
  for (;;) {
    pthread_mutex_lock(&lock);
    while (taken == queued && !finished) pthread_cond_wait(&ready, &lock);
    if (taken == queued && finished) {
      pthread_mutex_unlock(&lock);
      break;
    }
    pthread_rwlock_rdlock(&config_lock);
    int size = capacity;
    pthread_rwlock_unlock(&config_lock);
    int *batch = malloc(size * sizeof *batch);
    int count = 0;
    while (taken < queued) batch[count++] = queue[taken++]; // BUG
    pthread_mutex_unlock(&lock);
    if (count > largest) largest = count;
    free(batch);
  }
  printf("largest batch %d, capacity %d\n", largest, capacity);
  return NULL;
}

int main(int argc, char **argv) {
  long tune_after = argc > 1 ? atol(argv[1]) : 200000;
  pthread_t threads[3];
  pthread_create(&threads[0], NULL, consumer, NULL);
  pthread_create(&threads[1], NULL, producer, NULL);
  pthread_create(&threads[2], NULL, tuner, (void *)tune_after);
  for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
  return 0;
}
