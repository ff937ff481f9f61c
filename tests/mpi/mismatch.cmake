# "The same program on every rank" is checked by content: rank 0 runs PROGRAM, ranks 1-3 a copy of it
# with one byte appended (the same code at the same offsets, a different file). Creating a pool over MPI
# must fail with MPROC_EINVAL naming rank 1 (mpi_pool_check --mismatch exits 0 only then), and the job
# must end with status 0 within the timeout.
get_filename_component(dir "${PROGRAM}" DIRECTORY)
set(copy "${dir}/mpi_pool_check_other")
file(COPY_FILE "${PROGRAM}" "${copy}")
file(APPEND "${copy}" "x")
list(GET MPIRUN 0 mpiexec)
list(SUBLIST MPIRUN 1 -1 flags)
list(FILTER flags EXCLUDE REGEX "^(-n|-np|4)$")
execute_process(COMMAND ${mpiexec} ${flags} -n 1 ${PROGRAM} --mismatch : -n 3 ${copy} --mismatch
                TIMEOUT 45 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(REMOVE "${copy}")
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the job ended with ${rc}")
endif()
if(NOT "${out}" MATCHES "rank 1 runs a different program")
  message(FATAL_ERROR "pool creation did not name rank 1")
endif()
