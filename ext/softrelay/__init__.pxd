# Marks ext/softrelay as the package softrelay for Cython lookups of .pxd files.
