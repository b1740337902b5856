#include "board.h"
int main(void)
{
    board_init();
    uart3_puts("BOOT stub\n");
    for (;;) {
    }
}
