"""Pure, synchronous domain logic: no Kafka, Faust, Redis or clock. Time is an argument."""
