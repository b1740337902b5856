/*
 * stdlib.h - what lwIP's sources include from <stdlib.h> in this freestanding build
 * (no newlib): atoi, used by netif_find() to parse an interface number.
 */
#ifndef LWIP_PORT_STDLIB_H
#define LWIP_PORT_STDLIB_H

#include <stddef.h>

int lwip_port_atoi(const char *s);
#define atoi(s) lwip_port_atoi(s)

#endif /* LWIP_PORT_STDLIB_H */
