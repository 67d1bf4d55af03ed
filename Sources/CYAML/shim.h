#ifndef PRISM_CYAML_SHIM_H
#define PRISM_CYAML_SHIM_H
#include <yaml.h>
#endif
