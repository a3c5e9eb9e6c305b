/* Stack overflow driven by a file that is gone at triage time: the first
 * line says how many bytes of the second line to copy into a 16-byte stack
 * buffer. A large count smashes the return address, so the plain build
 * crashes with SIGSEGV when parse() returns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *path) {
  char name[16];
  char *line = malloc(512);
  FILE *file = fopen(path, "r");
  if (file == NULL) return -1;
  if (fgets(line, 512, file) == NULL) return -1;
  size_t count = (size_t)atoi(line);
  if (fgets(line, 512, file) == NULL) return -1;
  fclose(file);
  memcpy(name, line, count); // BUG
  return name[0];
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int first = parse(argv[1]);
  printf("first byte %d\n", first);
  return 0;
}
