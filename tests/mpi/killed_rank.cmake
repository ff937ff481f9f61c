# A rank killed during a map (mpi_pool_check --kill: rank 2 kills itself in a task): Open MPI 4.1 has no
# fault tolerance, so the job must end within a bounded time with a non-zero status and a message that
# names the rank. Passes only if all three hold.
execute_process(COMMAND ${MPIRUN} ${PROGRAM} --kill TIMEOUT 45 RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message("${out}${err}")
if(rc MATCHES "timeout|Process terminated due to timeout")
  message(FATAL_ERROR "the job did not end within 45 s: ${rc}")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "the job ended with status 0 after a rank was killed")
endif()
if(NOT "${out}${err}" MATCHES "rank 2")
  message(FATAL_ERROR "no message names rank 2")
endif()
if("${out}" MATCHES "the map ended")
  message(FATAL_ERROR "rank 0 went on past the map as if nothing happened")
endif()
message("the job ended with ${rc}, naming rank 2")
