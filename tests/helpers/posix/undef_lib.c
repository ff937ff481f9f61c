/* A shared library referring to a function nothing defines, in a function nobody calls: a program
 * linked with it loads as programs load by default (lazy binding), and fails to load with eager
 * binding (LD_BIND_NOW). */
void mproc_test_symbol_nobody_defines(void);
void mproc_test_undef_never_called(void);
void mproc_test_undef_never_called(void) { mproc_test_symbol_nobody_defines(); }
