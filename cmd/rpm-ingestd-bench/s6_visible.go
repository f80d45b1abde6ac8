package main

func (b *bench) scenarioVisible() error { return nil }
