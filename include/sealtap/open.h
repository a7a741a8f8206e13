/* `sealtap open`: records with sealed values opened (src/open_cli.c). */
#ifndef SEALTAP_OPEN_H
#define SEALTAP_OPEN_H

/* Runs `sealtap open`; argv[0] is "open". Returns the exit status. */
int open_main(int argc, char **argv);

#endif
