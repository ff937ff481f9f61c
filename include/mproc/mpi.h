/*
 * mproc/mpi.h: the Pool over the ranks of an MPI job (library mproc_mpi, CMake target mproc::mpi; built
 * where CMake finds MPI, option MPROC_WITH_MPI). libmproc itself never depends on MPI.
 *
 *   int main(int argc, char **argv) {
 *     mproc_mpi_main_guard(&argc, &argv);        // instead of mproc_main_guard; ranks > 0 stay inside
 *     mproc_pool_opts o = {0};
 *     o.backend = mproc_mpi_pool_backend();      // NULL without mpirun: the local pool
 *     mproc_pool *pool;
 *     mproc_pool_create(&pool, &o);              // one worker per rank > 0
 *     ...                                        // apply, map, imap, starmap, callbacks: as ever
 *   }
 *
 * ---- Roles ----
 * Under `mpirun -np N ./program` every rank runs main until mproc_mpi_main_guard. It first runs
 * mproc_main_guard (a process mproc started locally runs its role there), then initialises MPI with
 * MPI_Init_thread(MPI_THREAD_SERIALIZED) unless MPI_Initialized says the program did already (then it
 * needs at least MPI_THREAD_SERIALIZED, and MPI_THREAD_MULTIPLE if the program makes MPI calls while a
 * pool runs: mproc's calls come from the pool's result thread and from the threads that submit work,
 * one at a time under a lock of mproc's). Rank 0 returns 0 and runs the program. With more
 * than one rank, every other rank becomes a worker and never returns: it serves one pool after another
 * until rank 0 finalizes, then calls MPI_Finalize and exits with status 0. A rank enters that role only
 * when MPI_Init succeeded in a job of more than one rank and the process is not in secure-execution mode
 * (set-user-ID and the like: then the guard does not touch MPI at all and returns 0 on every rank, as a
 * plain program's copies). Alone (no mpirun, or -np 1) the guard returns 0 and
 * mproc_mpi_pool_backend() is NULL: the program runs unchanged with local pools.
 * mproc talks on a duplicate of MPI_COMM_WORLD; the other ranks belong to mproc, so a program must not
 * make collective calls on MPI_COMM_WORLD after the guard.
 *
 * ---- Finalize ----
 * mproc_mpi_finalize (run by atexit on rank 0 when the guard initialised MPI) ends the workers' serve
 * loops and calls MPI_Finalize only if the guard called MPI_Init. A program that initialised MPI itself
 * calls mproc_mpi_finalize, then MPI_Finalize.
 *
 * ---- The same program on every rank ----
 * Tasks are found on the other ranks as a Process target is found under spawn (module and offset), so
 * every rank must run the same executable: at the guard each rank sends rank 0 a checksum of its
 * executable file's contents (FNV-1a 64, a non-cryptographic checksum: it catches a stale copy on a
 * node, not an attacker), and a pool created over MPI fails with MPROC_EINVAL naming the first rank
 * whose checksum differs. Shared libraries that hold tasks must be the same on every node too.
 *
 * ---- What differs from the local pool ----
 * processes 0 means one worker per rank > 0 (more: MPROC_EINVAL). Pools may overlap: a rank then serves
 * them in turn on its one thread (a task of one waits while a task of another runs there). maxtasksperchild and
 * task_timeout_ms give MPROC_ENOTSUP (a rank cannot be replaced or a task killed without ending the job), as does the
 * array path (mproc_pool_map_array*: its records live in shared memory; map them as byte strings). terminate fails
 * unfinished results with MPROC_ECLOSED at once, without MPI_Abort; a task already running on a rank runs to its end
 * there (its output is dropped; the rank's next pool's first task waits for it). A message (a task's input or output)
 * may be longer than an MPI count of bytes says (2 GiB): it then goes as its length and a body of
 * 1 GiB parts. Open MPI 4.1 has no fault tolerance: a rank that dies ends the whole job (mpirun kills
 * the others and names the rank in its message, exit status non-zero).
 *
 * ---- Waiting ----
 * Rank 0 makes mproc's MPI calls on the pool's own threads, one at a time: a task goes out (MPI_Isend)
 * from the thread that hands it to a worker (the caller's submit, or the pool's result thread), and
 * while a task is in flight the result thread polls MPI instead of sleeping, putting the replies that
 * come back straight into the engine's reply ring for their worker (mproc/pool_backend.h: send, poll,
 * hands_replies). A writer thread writes what must still go on a worker's local connection (a reply
 * too long for the ring, the end), so a polling thread never waits on an engine. A
 * worker rank reads MPI on its main thread and runs the tasks there, sending the replies of a batch of
 * quick tasks back in one message (at most 32 replies, or 50 us, held; the reply of a task that took
 * 50 us or more goes at once), and it sees a message over 8 KiB gone before it runs the next task (a
 * message beyond MPI's eager limit crosses TCP only while its sender makes MPI calls). Rank 0 receives
 * without waiting for a message to be in (MPI_Improbe, MPI_Imrecv): a long reply on its way holds up
 * no other rank's. Neither side ever blocks inside MPI (Open MPI's blocking calls spin at full CPU):
 * they poll (MPI_Iprobe, MPI_Test), yielding the CPU between polls for 200 us after a message, then nap
 * 50 us between polls until 2 ms, and then wait 1 ms at a time; rank 0 polls only while a task is in
 * flight - so idle ranks use next to no CPU even oversubscribed, without
 * `--mca mpi_yield_when_idle 1` (which still helps the MPI_Init and MPI_Finalize of an oversubscribed
 * job).
 */
#ifndef MPROC_MPI_H
#define MPROC_MPI_H

#include <stddef.h>

#include "mproc/pool.h"
#include "mproc/pool_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The entry of every rank (see above): 0 on rank 0 and when alone; MPROC_ESYS when MPI_Init (or the
 * checksum exchange) failed: the program may go on with local pools. Ranks > 0 never return. */
int mproc_mpi_main_guard(int *argc, char ***argv);

/* The backend for mproc_pool_opts.backend: the ranks > 0 of the job, or NULL when there are none
 * (alone, or the guard did not run). */
const mproc_pool_backend *mproc_mpi_pool_backend(void);

/* This process's rank and the job's size (0 and 1 when alone). */
int mproc_mpi_rank(void);
int mproc_mpi_size(void);

/* On rank 0: end the workers' serve loops, and MPI_Finalize if the guard initialised MPI. Destroy pools
 * over MPI first: one still open loses its workers (unfinished results fail with MPROC_EWORKERDIED, and
 * it cannot start others). 0; later calls do nothing. */
int mproc_mpi_finalize(void);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_MPI_H */
