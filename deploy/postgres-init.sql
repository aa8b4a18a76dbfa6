-- One PostgreSQL server, one database per service.
CREATE DATABASE labelstudio;
CREATE DATABASE prefect;
