/* Heap overflow that depends on stdin: a length prefix read from stdin
 * decides how many bytes read() writes into a 16-byte heap buffer. The plain
 * build dies later, dereferencing the neighbouring heap pointer the overflow
 * overwrote (the symptom); ASan on replay catches the read itself (the root
 * cause). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(void) {
  char header[8] = {0};
#ifdef PECKER_DIVERGE
  /* A build that behaves differently: one more clock read before the input. */
  (void)time(NULL);
#endif
  if (read(0, header, 4) != 4) return 2;
  int length = atoi(header);
  char *buffer = malloc(16);
  char **name = malloc(sizeof *name);
  *name = header;
  ssize_t got = read(0, buffer, (size_t)length); // BUG
  printf("read %zd bytes, first %c\n", got, **name);
  free(name);
  free(buffer);
  return 0;
}
