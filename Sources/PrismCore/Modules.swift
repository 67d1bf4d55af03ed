// The host's lower modules, visible in every file of PrismCore (and to what imports PrismCore:
// the benchmarks use monotonicNanoseconds).
@_exported import PrismHost
