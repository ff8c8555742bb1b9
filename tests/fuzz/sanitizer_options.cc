// Linked into every libFuzzer target. The library is built with recoverable
// UBSan checks (the top-level flags), which only print a report and carry
// on; libFuzzer would not notice. Halting turns every report into a crash
// that libFuzzer saves as an input.
extern "C" const char* __ubsan_default_options() { return "halt_on_error=1:print_stacktrace=1"; }
