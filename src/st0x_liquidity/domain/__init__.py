"""Pure domain: values, the FIFO accumulator and hedge decisions. No I/O here."""
