# cmake -DEMULATOR=<runner or empty> -DPROGRAM=<exe> -DARGS=<a;b;c> -P expect_failure.cmake
# Runs PROGRAM (through the cross-compiling emulator, if any) and succeeds only if it FAILED: a
# crash, an abort or a non-zero exit. It is the self-test of the test runner: if a crash were ever
# reported as exit 0 (as wine with its default crash debugger sometimes does), this test fails.
if(EMULATOR)
  set(_cmd ${EMULATOR} ${PROGRAM} ${ARGS})
else()
  set(_cmd ${PROGRAM} ${ARGS})
endif()
execute_process(COMMAND ${_cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
message(STATUS "command: ${_cmd}\nresult: ${rc}\nstdout: ${out}\nstderr: ${err}")
if("${rc}" STREQUAL "0")
  message(FATAL_ERROR "the runner reported a failing program as successful (exit 0)")
endif()
if(EXPECT_EXIT AND NOT "${rc}" STREQUAL "${EXPECT_EXIT}")
  message(FATAL_ERROR "expected exit status ${EXPECT_EXIT}, got '${rc}'")
endif()
