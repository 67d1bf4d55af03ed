// The host's lower modules, visible in every file of PrismHost (and of PrismCore above it).
@_exported import PrismSupport
@_exported import PrismSharedState
@_exported import PrismTransport
