/*
 * mproc.h: the umbrella header: everything mproc offers. Include this, or the module headers in
 * mproc/ one by one.
 */
#ifndef MPROC_H
#define MPROC_H

#include "mproc/core.h"
#include "mproc/handle.h"
#include "mproc/connection.h"
#include "mproc/listener.h"
#include "mproc/manager.h"
#include "mproc/process.h"
#include "mproc/subprocess.h"
#include "mproc/object.h"
#include "mproc/sync.h"
#include "mproc/pool.h"
#include "mproc/pool_backend.h" /* (mproc/mpi.h, the MPI backend, is in library mproc::mpi: include it yourself) */
#include "mproc/queue.h"
#include "mproc/shared.h"

#endif /* MPROC_H */
