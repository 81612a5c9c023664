"""Neural tangent kernels: empirical kernels along a trajectory, their distances and velocities, and the kernel
machines built from them."""
