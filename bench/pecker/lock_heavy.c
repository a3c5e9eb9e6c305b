// Lock-heavy: two threads take one mutex many times (each acquire is an event).
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter, n;
static void *work(void *arg) {
  (void)arg;
  for (long i = 0; i < n; i++) {
    pthread_mutex_lock(&lock);
    counter++;
    pthread_mutex_unlock(&lock);
  }
  return NULL;
}
int main(int argc, char **argv) {
  n = argc > 1 ? atol(argv[1]) : 100000;
  pthread_t a, b;
  pthread_create(&a, NULL, work, NULL);
  pthread_create(&b, NULL, work, NULL);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  printf("%ld\n", counter);
  return counter == 2 * n ? 0 : 1;
}
