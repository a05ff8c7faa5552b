"""The watch runtime: one owner per watch (the table and the scheduler) and the step each runs."""
