#!/usr/bin/env node
import { mapperMain } from '../framework/mapper-cli.js';
import { createModbusDriver } from './modbus-driver.js';

mapperMain({
  name: 'modbus-mapper',
  description: "Modbus TCP mapper: reads and writes the node's modbus devices and reports them over MQTT.",
  protocols: ['modbus'],
  createDriver: createModbusDriver,
});
