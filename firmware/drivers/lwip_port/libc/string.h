/*
 * string.h - what lwIP's sources include from <string.h>, for this freestanding build
 * (no newlib): the functions come from common/fwlib.c; strcmp/strstr/strchr are never
 * reached in the lwIP configuration used here (no DNS) and are not provided.
 */
#ifndef LWIP_PORT_STRING_H
#define LWIP_PORT_STRING_H

#include "fwlib.h"

#endif /* LWIP_PORT_STRING_H */
