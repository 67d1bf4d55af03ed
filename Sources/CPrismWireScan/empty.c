/* Header-only: see include/prism_wire_scan.h. */
