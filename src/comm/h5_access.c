// h5_access.c — h5_access.h: the MPI-IO file-access list of a Comm.
#include "stsae/comm/h5_access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_mpi.h"

hid_t comm_h5_fapl(Comm *c) {
    static int said = 0;
    const char *io = getenv("OMPI_MCA_io"); // comm_world_init set "^ompio" unless the user chose
    if (io && io[0] != '^' && strstr(io, "ompio") && !said++ && comm_rank(comm_world()) == 0 && comm_is_open_mpi())
        fprintf(stderr, "stsae: warning: OMPI_MCA_io=%s: Open MPI's OMPIO can lose the error of a failed collective "
                        "write (a full disk), and clips may then be marked done over features never written; unset "
                        "it to use ROMIO\n", io);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    if (H5Pset_fapl_mpio(fapl, comm_mpi(c), MPI_INFO_NULL) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}
