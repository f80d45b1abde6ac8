package main

func (b *bench) scenarioCoalesce() error { return nil }
