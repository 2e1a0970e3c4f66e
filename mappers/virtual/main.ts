#!/usr/bin/env node
import { mapperMain } from '../framework/mapper-cli.js';
import { createVirtualDriver } from './virtual-driver.js';

mapperMain({
  name: 'virtual-mapper',
  description: "Virtual mapper: simulates the node's `virtual` devices (sine, random, counter, constant) for demos.",
  protocols: ['virtual'],
  createDriver: createVirtualDriver,
});
