package mutate

// Lookup exposes lookup to the external tests.
var Lookup = lookup
