/*
 * app_info.c - the image header of one application build (version and build id come
 * from the Makefile: -DAPP_VERSION=N -DAPP_BUILD_ID="xxxxxxxx").
 */
#include "app.h"

#ifndef APP_VERSION
#error "build with -DAPP_VERSION=N"
#endif
#ifndef APP_BUILD_ID
#error "build with -DAPP_BUILD_ID=\"hex\""
#endif

extern uint32_t __image_size;
extern uint32_t __image_start;

__attribute__((section(".app_header"), used))
const app_header_t g_app_header = {
    .magic = APP_HEADER_MAGIC,
    .header_version = APP_HEADER_VERSION,
    .app_version = APP_VERSION,
    .image_size = (uint32_t)(uintptr_t)&__image_size,
    .link_address = (uint32_t)(uintptr_t)&__image_start,
    .build_id = APP_BUILD_ID,
};
