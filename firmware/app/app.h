/* app.h - shared declarations of the test application. */
#ifndef APP_H
#define APP_H

#include <stdint.h>

#include "app_header.h"

extern const app_header_t g_app_header;

#endif /* APP_H */
