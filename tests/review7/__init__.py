"""Review 7: a hostile musician plays the anticipating SATB band (`--policy band_anticipate`) a sequenced,
on-grid soprano through a real `liveagent serve` and real UDP."""
