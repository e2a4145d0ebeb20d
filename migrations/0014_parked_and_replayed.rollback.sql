DROP TABLE IF EXISTS parked_events, dead_letter_replays;
